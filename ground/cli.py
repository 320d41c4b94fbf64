"""How every program here starts and fails.

A program parses its arguments (argparse: a usage error is exit code 2),
then ``run`` does the rest: its log lines (``[export] step: ...``, the
other libraries quiet), SIGTERM unwinding like Ctrl-C so that servers and
namespaces it started are stopped, any ``Failure`` as one line,
``PROG: error: WHY``, with exit code 1, and an interrupt as
``PROG: interrupted``, 130.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Type

from .process import interrupt_on_sigterm

INTERRUPTED = 130  # as a shell reports a program Ctrl-C ended
# the loggers whose INFO lines are a program's progress, one per step
PROGRESS = ('export', 'bench', 'tools')


class Failure(Exception):
    """What a program explains in one line and exits 1 for: the project's
    own errors (an export refused, a server that did not start, a store
    that cannot be reached) derive from it."""


def setup_logging(verbose: bool = False) -> None:
    """``[name] message`` lines; the progress loggers at INFO (DEBUG with
    ``verbose``), everything else at WARNING (DEBUG with ``verbose``)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format='[%(name)s] %(message)s')
    for name in PROGRESS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def parser(prog: str, doc: Optional[str]) -> argparse.ArgumentParser:
    """``python -m PROG``'s parser, its module docstring shown as written
    (the docstrings are laid out as paragraphs and lists)."""
    return argparse.ArgumentParser(
        prog=f'python -m {prog}', description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter)


def at_least(parser: argparse.ArgumentParser, least: int, flags: str,
             *values: float) -> None:
    """A usage error, ``FLAGS must be LEAST or more``, where any of
    ``values`` is below ``least``."""
    if min(values) < least:
        parser.error(f'{flags} must be {least} or more')


def images(parser: argparse.ArgumentParser, given: Sequence[Path]) -> List[Path]:
    """The images in ``given`` (files and folders); a usage error (exit 2)
    naming a path that is missing or holds none."""
    from triton_frcnn.files import given_images
    try:
        return given_images(given)
    except ValueError as exc:
        parser.error(str(exc))


def error(prog: str, why: object) -> int:
    """One line on stderr; the exit code to return from ``main``."""
    print(f'{prog}: error: {why}', file=sys.stderr)
    return 1


def run(prog: str, work: Callable[[], int],
        failures: Tuple[Type[BaseException], ...] = (),
        verbose: bool = False) -> int:
    """``work``'s exit code, after the start every program makes; a
    ``Failure`` (or one of ``failures``, errors of libraries that cannot
    derive from it) as one line and exit code 1; Ctrl-C or SIGTERM (what
    ``work`` started stopped on the way out) as one line and 130."""
    setup_logging(verbose)
    interrupt_on_sigterm()
    try:
        return work()
    except (Failure, *failures) as exc:
        return error(prog, exc)
    except KeyboardInterrupt:
        print(f'{prog}: interrupted', file=sys.stderr)
        return INTERRUPTED


def entry(prog: str,
          parse_args: Callable[[Optional[Sequence[str]]], argparse.Namespace],
          work: Callable[[argparse.Namespace], int]
          ) -> Callable[[Optional[Sequence[str]]], int]:
    """A program's ``main(argv=None)``: its arguments parsed (a usage error
    exits 2 there), then ``work(args)`` under ``run``."""
    def main(argv: Optional[Sequence[str]] = None) -> int:
        args = parse_args(argv)
        return run(prog, lambda: work(args))
    return main
