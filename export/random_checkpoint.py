"""Seeded random weights for a config, for tests and offline demos.

No weights can be downloaded on the machines this project is built on, yet
parity must be checked on the real R50-FPN architecture. Freshly initialised
heads give every class ~1/81 probability, under the 0.05 score threshold, so
the classifier is scaled up until the detector yields detections; that also
makes many near-equal scores, a harder parity test than trained weights.

    python -m export.random_checkpoint -c CONFIG -o OUT.pth [--seed N]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ground.cli import run


def make(config: Path, out: Path, seed: int = 0,
         classifier_gain: float = 40.0) -> Path:
    from . import checkpoint
    from . import model as detector_model
    cfg = detector_model.load_config(config)
    torch.manual_seed(seed)
    model = detector_model.build(cfg)
    model.init_weights()
    with torch.no_grad():
        model.roi_head.bbox_head.fc_cls.weight.mul_(classifier_gain)
    classes = cfg.get('metainfo', {}).get('classes')
    if classes is None:
        from mmdet.evaluation import get_classes
        classes = get_classes('coco')
    return checkpoint.save(out, model.state_dict(), classes, seed=seed,
                           classifier_gain=classifier_gain)


def ensure(config: Path, out: Path) -> Path:
    """``out``, made with the defaults (seed 0) if it is not there yet: the
    benchmarks' R50-FPN weights, the same file every time."""
    return out if out.exists() else make(config, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m export.random_checkpoint',
                                description=__doc__.splitlines()[0])
    p.add_argument('-c', '--config', type=Path, required=True)
    p.add_argument('-o', '--out', type=Path, required=True)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--classifier-gain', type=float, default=40.0)
    args = p.parse_args(argv)

    def work() -> int:
        print(make(args.config, args.out, args.seed, args.classifier_gain))
        return 0
    return run('export.random_checkpoint', work)


if __name__ == '__main__':
    sys.exit(main())
