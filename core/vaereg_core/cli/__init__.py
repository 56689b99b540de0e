"""The ``vaereg`` command line.

Each command group lives in its own module with a ``register(subparsers)``
function that adds its sub-commands; every sub-command stores its handler in
``func`` and returns a process exit status. Options are checked when parsed
(:mod:`vaereg_core.cli.arguments`); errors this project raises on purpose
(:class:`~vaereg_core.errors.VaeRegError`, or ``ValueError`` for an argument
out of range) and errors of the operating system (a full disk, a denied
permission) print one clear line and exit 2, never a traceback. Anything else
is a bug: one line asking for a report, exit 1 (``VAEREG_TRACEBACK=1`` shows it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from vaereg_core import __version__
from vaereg_core.cli.arguments import OneLineParser
from vaereg_core.errors import VaeRegError

COMMAND_MODULES = (
    "vaereg_core.cli.voxels",
    "vaereg_core.cli.dataset",
    "vaereg_core.cli.model",
    "vaereg_core.cli.forward",
    "vaereg_core.cli.inverse",
    "vaereg_core.cli.design",
    "vaereg_core.cli.physics",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered command."""
    parser = OneLineParser(prog="vaereg", description="VAEReg Studio command line: microstructures, physics, models, inverse design.")
    parser.add_argument("--version", action="version", version=f"vaereg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    _record_prog(parser)
    return parser


def _record_prog(parser: argparse.ArgumentParser) -> None:
    """Store each sub-command's full name (``vaereg dataset build``) as its ``prog`` default, for messages."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.set_defaults(prog=sub.prog)
                _record_prog(sub)


def _one_line(text: object) -> str:
    """A message on one line: libraries' multi-line messages joined."""
    return " ".join(str(text).split())


def _os_message(exc: OSError) -> str:
    """``PATH: reason`` of an operating-system error."""
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vaereg`` console script."""
    args = build_parser().parse_args(argv)
    prefix = args.prog
    try:
        return int(args.func(args) or 0)
    except (VaeRegError, ValueError) as exc:
        # ValueError: an out-of-range argument value caught by the library's own checks.
        print(f"{prefix}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prefix}: error: {_one_line(_os_message(exc))}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{prefix}: error: out of memory (try a smaller grid, or a machine with more memory)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last resort: a bug must still end in one line
        if os.environ.get("VAEREG_TRACEBACK"):
            raise
        print(f"{prefix}: internal error: {type(exc).__name__}: {_one_line(exc)} (please report; VAEREG_TRACEBACK=1 shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
