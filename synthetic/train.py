"""python -m synthetic.train: train the demo detector and package its weights.

``make train-demo`` runs this: mmengine's Runner trains the config (progress
every 25 iterations in the log), evaluates on the val split, and the final
weights are stored in half precision with the class names and a record of
how they were made, small enough to commit.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from detection import paths


def package(state: dict, classes, record: dict, out: Path) -> Path:
    """fp16 weights (integer buffers kept), class names, training record."""
    from export.checkpoint import save
    weights = {k: v.half() if v.is_floating_point() else v
               for k, v in state.items()}
    return save(out, weights, classes, training=record)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m synthetic.train',
                                description=__doc__.splitlines()[0])
    p.add_argument('-c', '--config', type=Path, default=paths.DEMO_CONFIG)
    p.add_argument('-o', '--out', type=Path, default=paths.DEMO_CHECKPOINT)
    p.add_argument('--work-dir', type=Path, default=paths.WORK_DIRS / 'demo')
    p.add_argument('--iters', type=int, default=None,
                   help='override the config\'s max_iters')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    if args.iters is not None and args.iters < 2:
        p.error('--iters must be 2 or more')

    from mmengine.config import Config
    from mmengine.runner import Runner
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(str(args.config))
    cfg.work_dir = str(args.work_dir)
    cfg.randomness = dict(seed=args.seed, deterministic=False)
    if args.iters:  # the warm-up shortened to fit (a quick run, a test's)
        cfg.train_cfg.max_iters = args.iters
        warmup, schedule = cfg.param_scheduler
        warmup.end = min(warmup.end, args.iters // 2)
        schedule.begin, schedule.end = warmup.end, args.iters
    # evaluated once, explicitly, after training
    cfg.train_cfg.val_interval = cfg.train_cfg.max_iters + 1
    runner = Runner.from_cfg(cfg)
    start = time.time()
    runner.train()
    train_seconds = round(time.time() - start)
    metrics = {k: round(float(v), 4) for k, v in runner.val_loop.run().items()}
    record = {
        'config': str(args.config.relative_to(paths.ROOT)),
        'iterations': cfg.train_cfg.max_iters,
        'batch_size': cfg.train_dataloader.batch_size,
        'seed': args.seed,
        'train_seconds': train_seconds,
        'threads': torch.get_num_threads(),
        'val_metrics': metrics,
        'torch': str(torch.__version__),
    }
    out = package(runner.model.state_dict(), cfg.metainfo['classes'], record,
                  args.out)
    args.out.with_suffix('.json').write_text(json.dumps(record, indent=2) + '\n')
    print(f'wrote {out} ({out.stat().st_size / 2**20:.1f} MB): {record}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
