"""Every measurement README and docs quote is a result file committed under
docs/results, with the date, the machine and the versions it ran on."""
from __future__ import annotations

import json
import re

from .conftest import ROOT

RESULTS = ROOT / 'docs' / 'results'


def cited() -> set:
    """docs/results files named by README (as docs/results/...) and by the
    docs (as results/..., relative to docs/)."""
    names = set(re.findall(r'docs/results/([\w.-]+\.(?:json|md|png|log))',
                           (ROOT / 'README.md').read_text()))
    for doc in (ROOT / 'docs').glob('*.md'):
        names |= set(re.findall(r'(?<![\w/])results/([\w.-]+\.(?:json|md|png|log))',
                                doc.read_text()))
    return names


def test_every_cited_result_file_is_committed():
    names = cited()
    assert {'bench.json', 'load.json', 'resources.json'} <= names
    missing = sorted(n for n in names if not (RESULTS / n).is_file())
    assert not missing, f'cited but not in docs/results: {missing}'


def test_every_result_file_says_when_where_and_with_what():
    files = sorted(RESULTS.glob('*.json'))
    assert len(files) >= 3
    for path in files:
        head = json.loads(path.read_text())['provenance']
        assert re.match(r'\d{4}-\d\d-\d\dT', head['date']), path.name
        assert head['machine']['cpus'] >= 1 and head['machine']['cpu'], path.name
        assert head['versions']['python'] and head['versions']['onnxruntime'], path.name
