"""The R50-FPN the benchmarks measure: the seed architecture with seeded
random weights (a forward pass costs what the real weights' does), exported
fp32 into the bench's own repository, made once and reused while current."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence, Tuple

from detection import paths


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('-c', '--config', type=Path, default=paths.R50_CONFIG)
    p.add_argument('-w', '--checkpoint', type=Path,
                   default=paths.RANDOM_R50_CHECKPOINT)
    p.add_argument('-r', '--repository', type=Path,
                   default=paths.RESULTS / 'bench' / 'model_repository')


def exported(args: argparse.Namespace, images: Sequence[Path]) -> Tuple[object, Path]:
    """The export request (served as ``bench``) and its version folder."""
    from export.pipeline import ensure
    from export.random_checkpoint import ensure as ensure_checkpoint
    from export.request import Export, Request
    ensure_checkpoint(args.config, args.checkpoint)
    request = Request(Export(config=args.config, checkpoint=args.checkpoint,
                             images=list(images), name='bench',
                             repository=args.repository))
    return request, ensure(request)
