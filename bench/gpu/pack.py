"""python -m bench.gpu.pack: what the GPU sitting (``python -m bench.gpu``)
needs, in one tar, for a GPU host that has no network, no mmdet and no onnx
package.

Made here, on a CPU, once; with ``--part-mb N`` it is cut into parts of N
MiB for a way in that carries little at a time (``parts/01``, ``parts/02``,
..., SHA256SUMS in the last; docs/gpu-sitting.md). The tar holds:

    wheels/      cp312 wheels pinned in bench/gpu/wheels.txt
    repository/  r50 (seeded random weights) and demo (the trained
                 detector), fp32, exported and parity-checked against mmdet
                 here, each with its GPU placement (configs/gpu.pbtxt)
    fp16/        r50.onnx, demo.onnx: the float16 conversion of those
                 graphs, as the export makes it
    synthetic/   the gate's images and annotations (the demo's val set)
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Sequence

from detection import paths
from ground.cli import Failure, run

from .placement import version_of

WHEELS = Path(__file__).with_name('wheels.txt')
PLATFORMS = ('manylinux_2_35_x86_64', 'manylinux_2_28_x86_64',
             'manylinux_2_24_x86_64', 'manylinux_2_17_x86_64',
             'manylinux2014_x86_64')
MODELS = ('r50', 'demo')  # the measured one, the gated one
log = logging.getLogger('bench.gpu.pack')


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='python -m bench.gpu.pack',
                                description=__doc__.splitlines()[0])
    p.add_argument('--out', type=Path, default=paths.ROOT / '.gpu')
    p.add_argument('--gate-images', type=int, default=100,
                   help='val images for the mAP gates (default: %(default)s)')
    p.add_argument('--part-mb', type=int, default=0, metavar='N',
                   help='also cut the tar into parts of N MiB, a folder each '
                   '(default: whole)')
    args = p.parse_args(argv)
    if args.part_mb < 0:
        p.error('--part-mb must be 0 (whole) or more')
    return args


def download_wheels(target: Path) -> None:
    """The device's interpreter is CPython 3.12 on x86-64 Linux; the folder
    holds the pinned wheels and nothing else (pip's cache keeps this quick)."""
    shutil.rmtree(target, ignore_errors=True)
    platforms = [arg for name in PLATFORMS for arg in ('--platform', name)]
    done = subprocess.run([sys.executable, '-m', 'pip', 'download', '--quiet',
                           '--no-deps', '--only-binary=:all:', '--python-version',
                           '3.12', *platforms, '-r', str(WHEELS), '-d', str(target)])
    if done.returncode:
        raise Failure(f'pip could not download the wheels in {WHEELS.name} '
                      '(above)')


def export(repository: Path) -> None:
    """Each model exported, or its export reused while it is current."""
    from export.pipeline import ensure
    from export.random_checkpoint import ensure as ensure_checkpoint
    from export.request import Export, Request
    samples = sorted(paths.SAMPLES.glob('*.jpg'))
    for name, config, checkpoint in (
            ('r50', paths.R50_CONFIG, ensure_checkpoint(
                paths.R50_CONFIG, paths.RANDOM_R50_CHECKPOINT)),
            ('demo', paths.DEMO_CONFIG, paths.DEMO_CHECKPOINT)):
        ensure(Request(Export(config=config, checkpoint=checkpoint,
                              images=samples, name=name,
                              repository=repository)))


def halve(repository: Path, target: Path,
          models: Sequence[str] = MODELS) -> None:
    """ONNX Runtime's float16 converter with the fp16 deploy config's
    settings, on each model's exported fp32 graph: ``target/MODEL.onnx``."""
    from export import fp16, onnx_export
    from export.formats import FORMATS
    settings = dict(onnx_export.load_deploy_config(
        FORMATS['onnxruntime-fp16'].deploy_config_path)
        .backend_config.common_config)
    target.mkdir(parents=True, exist_ok=True)
    for name in models:
        fp32 = version_of(repository, name) / 'model.onnx'
        if not (target / f'{name}.onnx').exists():
            fp16.convert(fp32, settings, target / f'{name}.onnx')


def gate_set(target: Path, count: int) -> None:
    from synthetic.generate import write_split
    write_split(target, 'val', count, seed=1)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run('bench.gpu.pack', lambda: pack(args.out, args.gate_images,
                                              args.part_mb))


def cut(tar: Path, part_mb: int, folder: Path) -> int:
    """``tar`` as parts of ``part_mb`` MiB, ``folder/01/NAME.part000``,
    ``folder/02/NAME.part001``, ..., and SHA256SUMS of the whole in the
    last folder: what scripts/gpu-sitting.sh joins and checks."""
    import hashlib
    shutil.rmtree(folder, ignore_errors=True)
    digest = hashlib.sha256()
    count = 0
    with open(tar, 'rb') as whole:
        while chunk := whole.read(part_mb * 2**20):
            digest.update(chunk)
            count += 1
            part = folder / f'{count:02d}' / f'{tar.name}.part{count - 1:03d}'
            part.parent.mkdir(parents=True)
            part.write_bytes(chunk)
    (folder / f'{count:02d}' / 'SHA256SUMS').write_text(
        f'{digest.hexdigest()}  {tar.name}\n')
    return count


def pack(out: Path, gate_images: int, part_mb: int = 0) -> int:
    download_wheels(out / 'wheels')
    export(out / 'repository')
    halve(out / 'repository', out / 'fp16')
    gate_set(out / 'synthetic', gate_images)
    with tarfile.open(out / 'sitting.tar', 'w') as tar:
        for part in ('wheels', 'repository', 'fp16', 'synthetic'):
            tar.add(out / part, arcname=part)
    size = (out / 'sitting.tar').stat().st_size / 2**20
    log.info('%s: %.0f MiB (%s)', out / 'sitting.tar', size, json.dumps(
        sorted(p.name for p in (out / 'wheels').iterdir())))
    if part_mb:
        count = cut(out / 'sitting.tar', part_mb, out / 'parts')
        log.info('%s: %d folders of one part of %d MiB each (SHA256SUMS in '
                 'the last)', out / 'parts', count, part_mb)
    return 0


if __name__ == '__main__':
    sys.exit(main())
