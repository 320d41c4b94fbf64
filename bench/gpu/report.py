"""What the GPU sitting reports: the ratios the issue's targets are read
from (by key), and performance-gpu.json with its Markdown."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

from ground.results import write_report
from ground.versions import MEASURED_WITH

PACKAGES = (*MEASURED_WITH, 'torchvision', 'onnxruntime-gpu',
            'opencv-python-headless')
TARGETS = {'tight_fraction': 0.95, 'served_vs_eager_fp32': 1.5,
           'prepost_share': 0.20}


def ratios(report: Dict) -> Dict:
    """The targets, read from the rows by key: served over eager at the
    same precision (fp32 for fp16 and buckets), exactness, pre/post."""
    eager = {p: max((r['images_per_s'] for r in report['paths'].get(
        f'pytorch eager {p}', {}).values()), default=None)
             for p in ('fp32', 'tf32')}
    out: Dict = {}
    served = {v: row for v, row in report['served'].items() if 'error' not in row}
    for variant, row in served.items():
        base = eager['tf32' if variant == 'tf32' else 'fp32']
        out[f'{variant}_served_vs_eager'] = base and round(
            row['best_throughput'] / base, 3)
    fp32 = served.get('fp32')
    if fp32:
        worst = min(r['fraction'] for r in fp32['parity'].values())
        speed = out['fp32_served_vs_eager']
        out['fp32_worst_tight_fraction'] = worst
        out['targets_met'] = {
            'exact': worst >= TARGETS['tight_fraction'],
            'speed': None if speed is None
            else speed >= TARGETS['served_vs_eager_fp32'],
            'prepost': fp32['prepost_share_at_best'] <= TARGETS['prepost_share']}
    return out


def placement_line(placed: Dict) -> str:
    """Each provider's node count, the op types the CPU took beside a GPU,
    the Memcpy nodes between them."""
    if 'error' in placed:
        return f'Node placement not read: {placed["error"]}.'
    parts = []
    for name, provider in placed['providers'].items():
        ops = ', '.join(f'{op} x{n}' for op, n in sorted(provider['ops'].items()))
        parts.append(f'{name} {provider["nodes"]} nodes'
                     + (f' ({ops})' if ops and name.startswith('CPU') else ''))
    parts += [f'{n} Memcpy nodes in {graph}'
              for graph, n in placed['memcpy'].items()]
    return 'Node placement of the fp32 graph: ' + '; '.join(parts) + '.'


def markdown(report: Dict) -> str:
    where = (f'{report["card"]}, driver {report["driver"]}' if report['card']
             else report['provenance']['machine']['cpu'])
    lines = [f'### {report["model"]} on {where}, '
             f'{report["provenance"]["date"][:10]}', '',
             '| path | ms/image | images/s |', '| --- | --- | --- |']
    lines += [f'| {path} batch {n} | {r["ms_per_image"]} | {r["images_per_s"]} |'
              for path, rows in report['paths'].items() for n, r in rows.items()]
    lines += ['', placement_line(report['placement'])]
    lines += ['', '| served | best images/s (at c) | worst photo tight | '
              'pre/post share | / eager |', '| --- | --- | --- | --- | --- |']
    for variant, row in report['served'].items():
        if 'error' in row:
            lines.append(f'| {variant} | failed: {row["error"]} | | | |')
            continue
        worst = min(r['fraction'] for r in row['parity'].values())
        against = report['ratios'][f'{variant}_served_vs_eager']
        lines.append(f'| {variant} | {row["best_throughput"]} '
                     f'({row["best_concurrency"]}) | {worst:.1%} | '
                     f'{row["prepost_share_at_best"]:.1%} | '
                     f'{f"{against}x" if against else "no eager run"} |')
    if report['gates'] and 'error' in report['gates']:
        lines += ['', f'mAP gates failed: {report["gates"]["error"]}']
    elif report['gates']:
        gate = report['gates']
        lines += ['', f'mAP gates ({gate["model"]}, {gate["images"]} images): '
                  + '; '.join(f'{v} AP {r["ap"]}' + (
                      f' ({-r["drop"]:+.2f}, allowed -{r["max_drop"]}: '
                      f'{"passed" if r["passed"] else "FAILED"})'
                      if 'drop' in r else '') for v, r in gate['rows'].items())]
    return '\n'.join(lines) + '\n'


def save(report: Dict, out: Path) -> None:
    report['ratios'] = ratios(report)
    write_report(out / 'performance-gpu.json', report, markdown, PACKAGES)
