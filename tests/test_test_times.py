"""``python -m tools.test_times``: the suite's times as a result file, read
from the JUnit XML pytest writes."""
from __future__ import annotations

import json

from tools import test_times

JUNIT = '''<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="2"
 tests="{n}" time="{total}">{cases}</testsuite></testsuites>'''


def junit(path, seconds):
    cases = ''.join(f'<testcase classname="tests.test_x" name="test_{i}" '
                    f'time="{s}"/>' for i, s in enumerate(seconds))
    path.write_text(JUNIT.format(n=len(seconds), total=sum(seconds),
                                 cases=cases))
    return path


def test_tiers_and_the_slowest_of_the_first_run_are_written(tmp_path, capsys):
    whole = junit(tmp_path / 'all.xml', [float(s) for s in range(1, 21)])
    fast = junit(tmp_path / 'fast.xml', [1.0, 2.5])
    out = tmp_path / 'results' / 'tests.json'
    assert test_times.main(['--tier', f'make test={whole}',
                            '--tier', f'make test-fast={fast}',
                            '--out', str(out)]) == 0
    report = json.loads(out.read_text())
    assert report['provenance']['versions']['onnxruntime']
    assert report['tiers'] == {
        'make test': {'seconds': 210.0, 'tests': 20, 'failures': 1,
                      'errors': 0, 'skipped': 2},
        'make test-fast': {'seconds': 3.5, 'tests': 2, 'failures': 1,
                           'errors': 0, 'skipped': 2}}
    assert [c['seconds'] for c in report['slowest']] == [
        float(s) for s in range(20, 5, -1)]
    assert report['slowest'][0]['test'] == 'tests.test_x::test_19'
    markdown = out.with_suffix('.md').read_text()
    assert '| `make test-fast` | 3.5 | 2 | 1 | 0 | 2 |' in markdown
    assert '| 20.0 | `tests.test_x::test_19` |' in markdown
    assert capsys.readouterr().out == markdown


def test_what_is_not_junit_is_one_line(tmp_path, capsys):
    bad = tmp_path / 'bad.xml'
    bad.write_text('not xml')
    out = tmp_path / 'tests.json'
    assert test_times.main(['--tier', f'a={bad}', '--out', str(out)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f'tools.test_times: error: {bad}: not a JUnit XML file (')
    assert not out.exists()


def test_cases_list_every_outcome_with_a_skips_reason(tmp_path):
    path = tmp_path / 'tier.xml'
    path.write_text(JUNIT.format(n=3, total=3.0, cases=(
        '<testcase classname="tests.test_a" name="test_ok" time="1.0"/>'
        '<testcase classname="tests.test_a" name="test_bad" time="1.5">'
        '<failure message="assert 1 == 2">trace</failure></testcase>'
        '<testcase classname="tests.test_b" name="test_later" time="0.5">'
        '<skipped message="no native backends given: set it&#10;more"/>'
        '</testcase>')))
    out = tmp_path / 'native-tier.json'
    assert test_times.main(['--tier', f'native={path}', '--cases',
                            '--out', str(out)]) == 0
    report = json.loads(out.read_text())
    assert [(c['test'], c['outcome']) for c in report['cases']['native']] == [
        ('tests.test_a::test_ok', 'passed'),
        ('tests.test_a::test_bad', 'failed'),
        ('tests.test_b::test_later', 'skipped: no native backends given: set it')]
    assert report['provenance']['engine']['name'] in ('stand-in', 'native')
    assert '| failed | 1.5 | `tests.test_a::test_bad` |' in \
        out.with_suffix('.md').read_text()
