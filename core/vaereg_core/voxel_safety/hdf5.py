"""Checks of an HDF5 file's objects before their data are read: no other file, no unbounded read.

An HDF5 dataset can keep its bytes in another file (external storage), be a
link into another file, or be a virtual dataset mapping other files: each
would read a file the user did not open, so each is refused. A dataset's
declared shape is checked against the memory budget and, when stored
contiguously, against the file's size; attributes are sized before they are
read. Filters (compression) must be available in this installation.
"""

from __future__ import annotations

import os
from typing import Any

from vaereg_core.errors import CorruptVoxelFileError, UnsupportedVoxelFileError
from vaereg_core.voxel_safety.budget import METADATA_MAX_BYTES, check_declared_array, check_metadata_size, voxel_dtype


def checked_dataset(f: Any, name: str, path: str | os.PathLike) -> Any:
    """The dataset ``name`` of an open ``h5py.File``, refused if it reaches outside the file.

    Raises
    ------
    UnsupportedVoxelFileError
        A soft or external link, external storage, a virtual dataset, or a
        filter (compression) this installation lacks.
    CorruptVoxelFileError
        Not a dataset, or stored beyond the end of the file.
    """
    import h5py

    link = f.get(name, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        raise UnsupportedVoxelFileError(path, f"'{name}' is a link into another file ({link.filename}:{link.path}), which is never followed")
    if isinstance(link, h5py.SoftLink):  # it could lead through an external link; our files never hold one
        raise UnsupportedVoxelFileError(path, f"'{name}' is a soft link (to {link.path}); only a stored dataset is read")
    data = f[name]
    if not isinstance(data, h5py.Dataset):
        raise CorruptVoxelFileError(path, f"'{name}' is not a dataset")
    plist = data.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        raise UnsupportedVoxelFileError(path, f"'{name}' is a virtual dataset (its data are in other files, which are never read)")
    if plist.get_external_count() > 0:
        target = plist.get_external(0)[0].decode(errors="replace")
        raise UnsupportedVoxelFileError(path, f"'{name}' keeps its data in another file ({target!r}), which is never read")
    for k in range(plist.get_nfilters()):
        code, _, _, filter_name = plist.get_filter(k)
        if not h5py.h5z.filter_avail(code):
            raise UnsupportedVoxelFileError(path, f"'{name}' uses HDF5 filter {code} ({filter_name.decode(errors='replace')})", needs="hdf5plugin")
    if plist.get_layout() == h5py.h5d.CONTIGUOUS:
        offset = data.id.get_offset()
        if offset is not None and offset + data.id.get_storage_size() > os.path.getsize(path):
            raise CorruptVoxelFileError(path, f"'{name}' is stored beyond the end of the file (truncated)")
    return data


def check_selection(data: Any, shape: tuple[int, ...], path: str | os.PathLike) -> None:
    """The part of ``data`` about to be read (of ``shape``) has a voxel dtype and fits the budget."""
    check_declared_array(path, shape, voxel_dtype(path, data.dtype), what=f"'{data.name.lstrip('/')}' declares")


def small_row(data: Any) -> bool:
    """Whether one row of a per-sample dataset is small enough to read as metadata."""
    row = 1
    for n in data.shape[1:]:
        row *= n
    return row * data.dtype.itemsize <= METADATA_MAX_BYTES


def attribute(obj: Any, name: str, path: str | os.PathLike) -> Any:
    """An attribute's value, sized before it is read; None when absent.

    Raises
    ------
    VoxelFileTooLargeError
        The attribute's stored size exceeds the metadata limit.
    """
    import h5py

    if not h5py.h5a.exists(obj.id, name.encode()):
        return None
    check_metadata_size(path, h5py.h5a.open(obj.id, name.encode()).get_storage_size())
    return obj.attrs[name]


def text_attribute(obj: Any, name: str, path: str | os.PathLike) -> str | None:
    """A string attribute (see :func:`attribute`); None when absent.

    Raises
    ------
    CorruptVoxelFileError
        Not one string.
    """
    value = attribute(obj, name, path)
    if value is None:
        return None
    if getattr(value, "shape", None) == (1,):
        value = value[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        raise CorruptVoxelFileError(path, f"attribute '{name}' must be one string, got {type(value).__name__}")
    return value
