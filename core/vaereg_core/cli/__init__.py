"""The ``vaereg`` command line.

Each command group lives in its own module with a ``register(subparsers)``
function that adds its sub-commands; every sub-command stores its handler in
``func`` and returns a process exit status. Errors this project raises on
purpose (:class:`~vaereg_core.errors.VaeRegError`, or ``ValueError`` for an
argument out of range) print one clear line and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from vaereg_core import __version__
from vaereg_core.errors import VaeRegError

COMMAND_MODULES = (
    "vaereg_core.cli.voxels",
    "vaereg_core.cli.dataset",
    "vaereg_core.cli.model",
    "vaereg_core.cli.inverse",
    "vaereg_core.cli.physics",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered command."""
    parser = argparse.ArgumentParser(prog="vaereg", description="VAEReg Studio command line: microstructures, physics, models, inverse design.")
    parser.add_argument("--version", action="version", version=f"vaereg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vaereg`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (VaeRegError, ValueError) as exc:
        # ValueError: an out-of-range argument value caught by the library's own checks.
        print(f"vaereg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vaereg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
