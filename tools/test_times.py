"""python -m tools.test_times: how long the test suite takes, as a result
file (docs/results/tests.json and .md), from pytest's own JUnit XML.

The issue of a fast suite is argued with numbers: each tier's time and
counts, and the slowest tests of the whole run (setup, call and teardown
together, as JUnit counts them), so that the next cut starts from them.
With ``--cases``, every test's outcome as well: what a tier run on another
engine showed (the native tier: docs/results/native-tier.json), headed by
the engine the run's servers had.

    make test PYTEST_ARGS=--junitxml=/tmp/all.xml
    make test-fast PYTEST_ARGS=--junitxml=/tmp/fast.xml
    python -m tools.test_times --tier 'make test=/tmp/all.xml' \\
        --tier 'make test-fast=/tmp/fast.xml' --out docs/results/tests.json
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

from ground import cli
from ground.results import title, write_report

SLOWEST = 15


def suite(xml: Path) -> ET.Element:
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError) as exc:
        raise cli.Failure(f'{xml}: not a JUnit XML file ({exc})') from None
    found = root if root.tag == 'testsuite' else root.find('testsuite')
    if found is None:
        raise cli.Failure(f'{xml}: no testsuite in it')
    return found


def tier(run: ET.Element) -> Dict:
    """Seconds and counts of one run."""
    counts = {k: int(run.get(k, 0)) for k in ('tests', 'failures', 'errors',
                                              'skipped')}
    return {'seconds': round(float(run.get('time', 0)), 1), **counts}


def slowest(run: ET.Element, n: int = SLOWEST) -> List[Dict]:
    cases = [{'test': f"{case.get('classname', '')}::{case.get('name')}",
              'seconds': round(float(case.get('time', 0)), 2)}
             for case in run.iter('testcase')]
    return sorted(cases, key=lambda c: -c['seconds'])[:n]


def outcome(case: ET.Element) -> str:
    for tag, word in (('failure', 'failed'), ('error', 'error'),
                      ('skipped', 'skipped')):
        found = case.find(tag)
        if found is not None:
            reason = (found.get('message') or '').splitlines()
            return word + (f': {reason[0]}' if reason and tag == 'skipped' else '')
    return 'passed'


def cases(run: ET.Element) -> List[Dict]:
    """Every test of a run with its outcome (a skip with its reason)."""
    return [{'test': f"{case.get('classname', '')}::{case.get('name')}",
             'outcome': outcome(case),
             'seconds': round(float(case.get('time', 0)), 2)}
            for case in run.iter('testcase')]


def render(report: Dict) -> str:
    lines = [title(report, 'Test suite times'), '',
             '| tier | seconds | tests | failures | errors | skipped |',
             '| --- | --- | --- | --- | --- | --- |']
    lines += [f"| `{name}` | {t['seconds']} | {t['tests']} | {t['failures']} "
              f"| {t['errors']} | {t['skipped']} |"
              for name, t in report['tiers'].items()]
    lines += ['', f"The {len(report['slowest'])} slowest tests of "
              f"`{report['slowest_of']}` (setup, call and teardown; a "
              'setup holds the session fixtures that test was the first to '
              'need, such as the shared exports and server):', '',
              '| seconds | test |', '| --- | --- |']
    lines += [f"| {c['seconds']} | `{c['test']}` |" for c in report['slowest']]
    for name, tested in report.get('cases', {}).items():
        lines += ['', f'Every test of `{name}`:', '',
                  '| outcome | seconds | test |', '| --- | --- | --- |']
        lines += [f"| {c['outcome']} | {c['seconds']} | `{c['test']}` |"
                  for c in tested]
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    p = cli.parser('tools.test_times', __doc__)
    p.add_argument('--tier', action='append', required=True,
                   metavar='NAME=JUNIT.xml',
                   help="a run's name and its JUnit XML; the first one's "
                        'slowest tests are listed')
    p.add_argument('--out', type=Path, default=Path('docs/results/tests.json'))
    p.add_argument('--cases', action='store_true',
                   help="every test's outcome too (a tier run on an engine "
                   'of its own, such as the native tier)')
    args = p.parse_args(argv)
    tiers = [t.split('=', 1) for t in args.tier]
    if any(len(t) != 2 or not all(t) for t in tiers):
        p.error('--tier takes NAME=JUNIT.xml')

    def work() -> int:
        runs = {name: suite(Path(xml)) for name, xml in tiers}
        first = tiers[0][0]
        report = {'tiers': {name: tier(run) for name, run in runs.items()},
                  'slowest_of': first, 'slowest': slowest(runs[first])}
        if args.cases:
            report['cases'] = {name: cases(run) for name, run in runs.items()}
        print(render(write_report(args.out, report, render)), end='')
        return 0
    return cli.run('tools.test_times', work)


if __name__ == '__main__':
    raise SystemExit(main())
