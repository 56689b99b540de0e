"""Reading the ensemble's plain-array member files: a versioned ``.npz`` opened without pickle, every failure one clear error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from vaereg_core.errors import ModelFileError

T = TypeVar("T")


def read_array_file(path: str | os.PathLike, file_format: str, version: int, what: str, build: Callable[[np.lib.npyio.NpzFile], T]) -> T:
    """``build(arrays)`` of an ``.npz`` whose ``format`` and ``version`` entries match; ModelFileError naming ``path`` otherwise.

    ``what`` names the kind of file in the messages. A pickled object inside
    is refused (``allow_pickle=False``), never run; a missing entry, a damaged
    archive or a file that is no ``.npz`` reads as unreadable.

    >>> read_array_file("missing.npz", "x", 1, "test", dict)
    Traceback (most recent call last):
    ...
    vaereg_core.errors.ModelFileError: missing.npz: unreadable test file ([Errno 2] No such file or directory: 'missing.npz')
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if str(arrays["format"]) != file_format or int(arrays["version"]) != version:
                raise ModelFileError(path, f"not a {what} file of version {version}")
            return build(arrays)
    except ModelFileError:
        raise
    except (OSError, KeyError, ValueError, EOFError) as exc:
        raise ModelFileError(path, f"unreadable {what} file ({exc})") from None
