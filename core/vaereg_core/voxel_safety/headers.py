"""Header checks of the NumPy, ZIP, TIFF and raw formats, before their data are allocated or decoded.

Each function reads only what a header declares (shape, dtype, sizes,
offsets), compares it with the file's real size and the memory budget, and
raises the project's error; the caller then lets the library read the data.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from vaereg_core.errors import CorruptVoxelFileError, UnsupportedVoxelFileError
from vaereg_core.voxel_safety.budget import check_declared_array, check_metadata_size, voxel_dtype

NPY_MAGIC = b"\x93NUMPY"


def npy_header(path: str | os.PathLike, f: IO[bytes], available: int) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Read and check a ``.npy`` header from ``f``; leaves ``f`` at the start of the data.

    Parameters
    ----------
    path : path-like
        Named in errors.
    f : binary file
        Positioned at the magic string.
    available : int
        Bytes from the magic string to the end of the file (or ZIP member).

    Returns
    -------
    shape, fortran_order, dtype

    Raises
    ------
    CorruptVoxelFileError
        Not a ``.npy`` header, or the data are shorter than declared.
    UnsupportedVoxelFileError
        A format version or dtype this reader does not take (objects, records).
    VoxelFileTooLargeError
        Declares more than the memory budget.
    """
    start = f.tell()
    if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
        raise CorruptVoxelFileError(path, "not a .npy array (no NumPy magic string): truncated or corrupt")
    f.seek(start)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):  # 3.0 differs only by UTF-8 field names, which voxels never have
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} (1.0, 2.0 or 3.0 expected)")
    except (ValueError, EOFError, SyntaxError, RecursionError) as exc:
        raise CorruptVoxelFileError(path, f"invalid .npy header, it is truncated or corrupt ({str(exc)[:120]})") from None
    dtype = voxel_dtype(path, dtype)
    check_declared_array(path, shape, dtype, available=available - (f.tell() - start))
    return tuple(shape), bool(fortran), dtype


def read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array after :func:`npy_header` accepted it (never unpickles)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        npy_header(path, f, size)
        f.seek(0)
        return np.lib.format.read_array(f, allow_pickle=False)


def read_npz(path: Path) -> tuple[np.ndarray, str | None]:
    """The voxel array and the metadata text (or None) of a ``.npz`` archive, each member checked first.

    The voxels are the member ``voxels``, or the only member besides
    ``metadata``. Each member's ``.npy`` header must agree with the size the
    ZIP directory declares for it, and the compressed bytes must lie inside
    the file: a damaged or crafted archive is refused before it is inflated.
    """
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist() if not info.is_dir()}
            names = [n for n in members if n != "metadata"]
            if "voxels" in names:
                name = "voxels"
            elif len(names) == 1:
                name = names[0]
            else:
                raise CorruptVoxelFileError(path, f"archive holds {names or 'no arrays'}; expected one array or one named 'voxels'")
            voxels = _read_member(path, archive, members[name], size)
            text = None
            if "metadata" in members:
                check_metadata_size(path, members["metadata"].file_size)
                text = str(_read_member(path, archive, members["metadata"], size, metadata=True))
            return voxels, text
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        # NotImplementedError: a compression method zipfile does not know.
        raise CorruptVoxelFileError(path, f"cannot read .npz file, it is truncated or corrupt ({type(exc).__name__}: {exc})") from None


def _read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, size: int, metadata: bool = False) -> Any:
    where = f"{path} (member {info.filename})"
    if info.header_offset + info.compress_size > size:
        raise CorruptVoxelFileError(where, f"member data end at byte {info.header_offset + info.compress_size}, beyond the file's {size} bytes (truncated)")
    with archive.open(info) as member:
        if metadata:
            shape, dtype = _member_header(where, member)
            if dtype.kind not in "US" or shape != ():
                raise CorruptVoxelFileError(where, f"metadata must be a JSON string, got {dtype} of shape {shape}")
        else:
            npy_header(where, member, info.file_size)
            member.seek(0)
        return np.lib.format.read_array(member, allow_pickle=False)


def _member_header(where: str, member: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a non-voxel member (a string), without the voxel dtype rule."""
    try:
        version = np.lib.format.read_magic(member)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(member)
    except (ValueError, EOFError, SyntaxError, RecursionError) as exc:
        raise CorruptVoxelFileError(where, f"invalid .npy header ({str(exc)[:120]})") from None
    member.seek(0)
    return tuple(shape), dtype


def raw_layout(path: Path, sidecar_path: Path, sidecar: Any) -> tuple[tuple[int, ...], np.dtype, str]:
    """Shape, dtype and order of a ``.raw`` file from its parsed sidecar, checked against the file's size.

    Raises
    ------
    CorruptVoxelFileError
        The sidecar lacks or garbles ``shape``/``dtype``/``order``, or the file's
        size differs from what they need.
    VoxelFileTooLargeError
        The sidecar declares more than the memory budget.
    """
    try:
        if not isinstance(sidecar, dict):
            raise TypeError(f"the sidecar is a JSON {type(sidecar).__name__}, not an object")
        shape = tuple(_dimension(s) for s in sidecar["shape"])
        order = sidecar.get("order", "C")
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise CorruptVoxelFileError(sidecar_path, f"invalid sidecar: needs 'shape' and optionally 'dtype' and 'order' ({exc})") from None
    dtype = voxel_dtype(sidecar_path, sidecar.get("dtype", "uint8"))
    if order not in ("C", "F"):
        raise CorruptVoxelFileError(sidecar_path, f"order must be 'C' or 'F', got {str(order)[:40]!r}")
    expected = check_declared_array(sidecar_path, shape, dtype, what="the sidecar declares")
    actual = path.stat().st_size
    if actual != expected:
        raise CorruptVoxelFileError(
            path, f"size is {actual} bytes, but the sidecar's shape {shape} of {dtype} needs {expected} (truncated or wrong sidecar)"
        )
    return shape, dtype, order


def _dimension(value: Any) -> int:
    """One entry of a sidecar's shape: an integer (or its decimal text), never a bool or a fraction."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"shape entry {value!r} is not an integer")
    return int(value)


def check_tiff(path: Path, tif: Any) -> None:
    """Check a parsed ``tifffile.TiffFile`` before its pixels are decoded.

    Every page's codec must be available, every strip or tile must lie
    inside the file (offset 0 or 0 bytes is a damaged file, which tifffile
    would fill with zeros), uncompressed pages must hold their bytes, and the
    series must fit the memory budget.

    Raises
    ------
    CorruptVoxelFileError, UnsupportedVoxelFileError, VoxelFileTooLargeError
    """
    from tifffile import TIFF

    size = path.stat().st_size
    if not tif.pages:
        raise CorruptVoxelFileError(path, "cannot read .tif file, it is truncated or corrupt (no image pages)")
    series = tif.series[0]
    check_declared_array(path, series.shape, voxel_dtype(path, series.dtype))
    for number, page in enumerate(tif.pages):
        key = page.keyframe
        try:
            TIFF.DECOMPRESSORS[key.compression]
        except KeyError:
            raise UnsupportedVoxelFileError(path, f"page {number} is {key.compression.name}-compressed", needs="imagecodecs") from None
        held = 0
        for k, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts)):
            if offset < 8 or count <= 0 or offset + count > size:
                raise CorruptVoxelFileError(
                    path, f"page {number}, strip {k}: {count} bytes at offset {offset} do not lie inside the file's {size} bytes (corrupt)"
                )
            held += count
        if key.compression == 1 and held < key.nbytes:
            raise CorruptVoxelFileError(path, f"page {number} holds {held} bytes of its {key.nbytes} (truncated)")
