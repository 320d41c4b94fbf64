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


# a figure as the docs quote one: a ratio, a throughput, a time, memory, AP
FIGURE = re.compile(r'(?<![\w.])(\d[\d,]*\.(\d+))'
                    r'(x\b| images/s| img/s| ms\b| s\b| MiB\b| AP\b)')


def measured() -> set:
    """Every number in docs/results: the JSON files' values (and numbers in
    their strings), and the numbers in the .md and .log files."""
    numbers = set()

    def walk(value):
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers.add(float(value))
        elif isinstance(value, str):
            numbers.update(float(n) for n in re.findall(r'\d+\.\d+', value))
    for path in RESULTS.glob('*.json'):
        walk(json.loads(path.read_text()))
    for path in [*RESULTS.glob('*.md'), *RESULTS.glob('*.log')]:
        numbers.update(float(n.replace(',', '')) for n in
                       re.findall(r'\d[\d,]*\.\d+', path.read_text()))
    return numbers


def test_every_figure_the_docs_quote_is_in_a_result_file():
    """As written or rounded to the decimals the page gives: a figure from
    an older run (or typed by hand) is one no result file holds."""
    numbers = measured()
    quoted, unbacked = 0, []
    for page in [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]:
        for number, lineno in ((m, i) for i, line in
                               enumerate(page.read_text().splitlines(), 1)
                               for m in FIGURE.finditer(line)):
            quoted += 1
            value, decimals = float(number[1].replace(',', '')), len(number[2])
            if not any(round(n, decimals) == value for n in numbers):
                unbacked.append(f'{page.relative_to(ROOT)}:{lineno}: {number[0]}')
    assert quoted >= 50
    assert not unbacked, unbacked
