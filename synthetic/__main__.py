"""python -m synthetic: write the train and val splits (deterministic by seed)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ground import cli
from ground.cli import error

from .generate import write_split


def _holds(stamp: Path, count: int, seed: int) -> bool:
    """A split written with this seed and at least ``count`` images: the
    generator is sequential, so its first ``count`` images are the same."""
    if not stamp.exists():
        return False
    written, written_seed = map(int, stamp.read_text().split())
    return written >= count and written_seed == seed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m synthetic', description=__doc__)
    p.add_argument('-o', '--out', type=Path, default=Path('data/synthetic'))
    p.add_argument('--train', type=int, default=2500,
                   help='0 skips the split (the demo needs only val)')
    p.add_argument('--val', type=int, default=300)
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    cli.at_least(p, 0, '--train and --val', args.train, args.val)
    todo = []
    for split, count, seed in (('train', args.train, args.seed),
                               ('val', args.val, args.seed + 1)):
        stamp = args.out / f'.{split}.complete'
        if count and not _holds(stamp, count, seed):
            todo.append((split, count, seed, stamp))
    try:
        write(todo, args.out)
    except OSError as exc:
        return error('synthetic', f'cannot write {args.out}: '
                     f'{exc.strerror or exc}')
    written = {t[0] for t in todo}
    for split, count in (('train', args.train), ('val', args.val)):
        if count:
            state = 'written' if split in written else 'up to date'
            print(f'{args.out / split}: {count} images ({state})')
    return 0


def write(todo, out: Path) -> None:
    """Each split, then its stamp: a split cut short is written again."""
    with tqdm(total=sum(t[1] for t in todo), unit='img') as bar:
        for split, count, seed, stamp in todo:
            write_split(out, split, count, seed, progress=bar.update)
            stamp.write_text(f'{count} {seed}')


if __name__ == '__main__':
    sys.exit(main())
