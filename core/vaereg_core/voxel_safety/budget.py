"""The memory budget of one voxel read, and the checks of a declared array against it and the file.

A header can declare any shape; a library that trusts it allocates first and
fails (or is killed) later. Every reader checks the declared bytes here
first: against the file's size where the data are stored uncompressed, and
always against the budget, ``$VAEREG_MAX_VOXEL_BYTES`` (default 2 GB).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from vaereg_core.environment import positive_number
from vaereg_core.memory import format_bytes
from vaereg_core.errors import CorruptVoxelFileError, UnsupportedVoxelFileError, VoxelFileTooLargeError

ENV_VAR = "VAEREG_MAX_VOXEL_BYTES"
DEFAULT_MAX_BYTES = 2_000_000_000
METADATA_MAX_BYTES = 16_000_000
"""Largest metadata text (JSON) read from any file: provenance is kilobytes, never megabytes."""
VOXEL_KINDS = "biuf"
"""NumPy dtype kinds a voxel array may have: bool, signed, unsigned, float."""


def max_voxel_bytes() -> int:
    """The budget in bytes: ``$VAEREG_MAX_VOXEL_BYTES`` (a number, ``4e9`` allowed) or 2 GB.

    Raises
    ------
    ValueError
        The variable is set but is not a positive number.
    """
    value = positive_number(ENV_VAR, "bytes")
    return DEFAULT_MAX_BYTES if value is None else int(value)


def format_shape(shape: Sequence[int]) -> str:
    """``2000³`` for a cube, ``24x20x16`` otherwise."""
    if len(shape) == 3 and len(set(shape)) == 1:
        return f"{shape[0]}³"
    return "x".join(map(str, shape)) or "scalar"


def voxel_dtype(path: str | os.PathLike, dtype: object) -> np.dtype:
    """A dtype a voxel array may have (numeric, no fields, no sub-array), or a clear error.

    Raises
    ------
    CorruptVoxelFileError
        Not a dtype at all.
    UnsupportedVoxelFileError
        A dtype that is not plain numbers (objects, strings, records).
    """
    try:
        result = np.dtype(dtype)  # type: ignore[call-overload]
    except (TypeError, ValueError, SyntaxError, RecursionError) as exc:
        raise CorruptVoxelFileError(path, f"declares an invalid dtype {str(dtype)[:60]!r} ({exc})") from None
    if result.kind not in VOXEL_KINDS or result.fields is not None or result.subdtype is not None:
        raise UnsupportedVoxelFileError(path, f"voxel values of dtype {result} (not plain numbers)")
    return result


def check_declared_array(
    path: str | os.PathLike,
    shape: Sequence[int],
    dtype: np.dtype,
    *,
    available: int | None = None,
    what: str = "declares",
) -> int:
    """Check a declared array before allocating it; return its size in bytes.

    Parameters
    ----------
    path : path-like
        The file (named in the message).
    shape : sequence of int
        Declared shape.
    dtype : numpy.dtype
        Declared element type.
    available : int, optional
        Bytes the file actually holds for the array where it is stored
        uncompressed; fewer than declared means a truncated file.
    what : str
        Verb of the message (``declares``, ``'voxels' declares``).

    Raises
    ------
    CorruptVoxelFileError
        A negative dimension, or fewer bytes available than declared.
    VoxelFileTooLargeError
        More bytes than :func:`max_voxel_bytes`.
    """
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise CorruptVoxelFileError(path, f"{what} a negative dimension (shape {tuple(dims)})")
    nbytes = math.prod(dims) * dtype.itemsize  # Python ints: no overflow for any declared shape
    limit = max_voxel_bytes()
    if nbytes > limit:
        raise VoxelFileTooLargeError(
            path, f"{what} {format_shape(dims)} {dtype} = {format_bytes(nbytes)}; limit {format_bytes(limit)}, raise with {ENV_VAR}"
        )
    if available is not None and available < nbytes:
        raise CorruptVoxelFileError(
            path, f"{what} {format_shape(dims)} {dtype} = {nbytes} bytes, but the file holds only {max(available, 0)} (truncated)"
        )
    return nbytes


def check_metadata_size(path: str | os.PathLike, nbytes: int) -> None:
    """Refuse metadata text larger than :data:`METADATA_MAX_BYTES` before reading it."""
    if nbytes > METADATA_MAX_BYTES:
        raise VoxelFileTooLargeError(path, f"metadata of {format_bytes(nbytes)}; limit {format_bytes(METADATA_MAX_BYTES)}")

