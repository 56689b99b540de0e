"""Argument types shared by every ``vaereg`` command.

Each function here is an argparse ``type=``: it turns the option's text into
a value or raises :class:`argparse.ArgumentTypeError` with a message that
argparse prefixes with the option's name, so that ``--size 0`` reads
``vaereg generate: error: argument --size: must be at least 4, got 0``.
Checks that involve several options, or the file system, raise
:class:`UsageError` (exit status 2) from the command itself, naming the options.

Examples
--------
>>> positive_float("2.5")
2.5
>>> int_range(1, 8)("3")
3
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path
from typing import Callable

from vaereg_core.settings.fields import DEVICE_PATTERN


class UsageError(ValueError):
    """A combination of options, or an option's file, that cannot work (exit status 2)."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (no usage block), exit status 2.

    Sub-command parsers inherit the class, so every command reports alike.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_number(text: str, kind: Callable[[str], float | int]) -> float | int:
    """``text`` as an ``int`` or ``float``, or the one-line argparse error saying which was expected."""
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None


def finite_float(text: str) -> float:
    """A finite number: NaN and infinities are refused."""
    value = float(parse_number(text, float))
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def open_fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a solver tolerance)."""
    value = finite_float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def poisson_ratio(text: str) -> float:
    """A Poisson's ratio of a stable isotropic solid: in (-1, 0.5)."""
    value = finite_float(text)
    if not -1.0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"Poisson's ratio must be in (-1, 0.5), got {text}")
    return value


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type for integers in [low, high] (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        value = int(parse_number(text, int))
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
        return value

    parse.__name__ = f"integer in [{low}, {'...' if high is None else high}]"
    return parse


positive_int = int_range(1)
nonnegative_int = int_range(0)

MIN_GRID = 4
"""Smallest grid edge of a generated structure: below it the requested volume fraction cannot be met."""

grid_size = int_range(MIN_GRID)
"""Edge of a generated cubic grid (``--size``)."""


def device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and available on this machine."""
    name = text.strip().lower()
    if not DEVICE_PATTERN.match(name):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose auto, cpu, cuda, cuda:N or mps")
    if name in ("auto", "cpu"):
        return name
    import torch

    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(f"{name!r} requested but no CUDA GPU is available (use auto or cpu)")
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            raise argparse.ArgumentTypeError(f"{name!r} requested but this machine has {count} CUDA GPU(s): cuda:0..cuda:{count - 1}")
    elif not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError("'mps' requested but Apple MPS is not available (use auto or cpu)")
    return name


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` with a non-empty key."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"must look like KEY=VALUE, got {text!r}")
    return key.strip(), value


def existing_file(text: str) -> str:
    """A path to an existing regular file."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: file does not exist")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a file")
    return text


def existing_path(text: str) -> str:
    """A path to an existing file or folder (a model file or a run folder)."""
    if not Path(text).exists():
        raise argparse.ArgumentTypeError(f"{text}: does not exist")
    return text


def _can_create_in(folder: Path) -> bool:
    """Whether a file can be created in ``folder``: tried, since permission bits lie for root and read-only mounts."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".vaereg-probe-")
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path(".")


def output_dir(text: str) -> str:
    """A folder to write into: an existing writable folder, or one that can be created."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a folder")
    base = _nearest_existing(path.absolute())
    if not base.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: cannot create a folder under the file {base}")
    if not _can_create_in(base):
        raise argparse.ArgumentTypeError(f"{text}: {base} is not writable")
    return text


def output_file(text: str) -> str:
    """A file to write: not a folder, and in a folder that exists (or can be created) and is writable."""
    path = Path(text)
    if not path.name or path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a folder, not a file name")
    output_dir(os.fspath(path.parent) if path.parent != Path("") else ".")
    return text


HDF5_SUFFIXES = (".h5", ".hdf5")


def check_index(path: str, index: int | None) -> None:
    """Refuse ``--index`` for a file that is not an HDF5 stack (it would be ignored)."""
    if index is not None and Path(path).suffix.lower() not in HDF5_SUFFIXES:
        raise UsageError(f"--index selects a structure of an HDF5 stack; {path} is not an HDF5 file")


def model_or_default(path: str | None) -> Path:
    """The model file of ``--model``, or the bundled default model when it is not given.

    Raises
    ------
    ModelFileError
        If no ``--model`` is given and this installation has no default model.
    """
    if path is not None:
        return Path(path)
    from vaereg_core.errors import ModelFileError
    from vaereg_core.resources import default_model_path

    default = default_model_path()
    if not default.is_file():
        raise ModelFileError(default, "no bundled default model in this installation; train one with `vaereg train` and pass --model")
    return default


WORKERS_PER_CORE = 4
"""Most LocalCluster workers per CPU core: beyond that they only add memory and contention (more machines: --scheduler)."""


def local_workers(text: str) -> int:
    """A LocalCluster's worker count: from 1 to :data:`WORKERS_PER_CORE` times the machine's cores."""
    cores = os.cpu_count() or 1
    value = int_range(1)(text)
    if value > WORKERS_PER_CORE * cores:
        raise argparse.ArgumentTypeError(
            f"must be at most {WORKERS_PER_CORE * cores} ({WORKERS_PER_CORE} per core of this machine's {cores}; "
            f"--scheduler computes on more machines), got {value}")
    return value


def add_execution_options(p: argparse.ArgumentParser, what: str) -> None:
    """``--workers`` and ``--scheduler``: where the solves run (here, a LocalCluster, or a running Dask cluster)."""
    p.add_argument("--workers", type=local_workers, default=1,
                   help=f"{what} on a Dask LocalCluster of this many worker processes (default 1: in this process; "
                        f"at most {WORKERS_PER_CORE} per CPU core)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a running Dask scheduler (tcp://host:8786) whose workers do the work; --workers is then ignored")
