"""Reading and writing binary voxel structures in the formats materials scientists use.

Formats (by extension): ``.npy``, ``.npz``, ``.h5``/``.hdf5`` (the dataset
layout of DESIGN.md section 3: one structure or a stack with an index),
``.vti`` (VTK ImageData, one voxel per cell; opens in ParaView), ``.tif``/
``.tiff`` (multi-page, one page per index of axis 0; opens in Fiji) and
``.raw`` with a JSON sidecar (shape, dtype, order). The hard-phase surface
is exported as ``.stl`` by :func:`export_stl`.

Every problem is reported as :class:`~vaereg_core.errors.VoxelFileError`
naming the file and the reason. Writes go to a temporary file in the target
folder and are renamed into place, so a failed write leaves nothing behind,
and an existing file is only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from vaereg_core.errors import NotBinaryError, VoxelFileError

READ_EXTENSIONS = (".npy", ".npz", ".h5", ".hdf5", ".vti", ".tif", ".tiff", ".raw")
WRITE_EXTENSIONS = (".npy", ".npz", ".h5", ".hdf5", ".vti", ".tif", ".tiff", ".raw")
DATASET_NAME = "microstructures"
"""HDF5 dataset that holds the voxels (DESIGN.md section 3)."""
VTK_ARRAY_NAME = "phase"
"""Name of the VTK cell array: 1 = hard phase, 0 = soft phase."""


def _extension(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in READ_EXTENSIONS:
        raise VoxelFileError(path, f"unknown extension {ext or '(none)'!r}; use one of {', '.join(READ_EXTENSIONS)}")
    return ext


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a ``.raw`` file (or metadata of a ``.npy``): the full name plus ``.json``.

    Keeping the data file's extension (``a.raw.json``) lets ``a.raw`` and
    ``a.npy`` sit side by side. On reading, ``a.json`` is accepted too.
    """
    path = Path(path)
    sidecar = path.with_name(path.name + ".json")
    alternative = path.with_suffix(".json")
    return alternative if not sidecar.exists() and alternative.exists() else sidecar


# --------------------------------------------------------------------------- checks


def as_binary(array: np.ndarray, path: str | os.PathLike, *, threshold: float | None = None) -> np.ndarray:
    """Validate a voxel array and return it as uint8 with 1 = hard phase.

    Binary data are values {0, 1} of any numeric type or bool; ``{0, 255}``
    (the binary masks of Fiji/ImageJ) also counts as binary. Anything else is
    grey-scale and needs an explicit ``threshold``: voxels ``> threshold``
    become the hard phase.

    Raises
    ------
    VoxelFileError
        Not 3-D, empty, NaN/inf or non-numeric values.
    NotBinaryError
        Grey-scale values and no threshold.
    """
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise VoxelFileError(path, f"voxel values must be numeric, got dtype {array.dtype}")
    if array.ndim != 3:
        raise VoxelFileError(path, f"expected a 3-D voxel array, got {array.ndim}-D with shape {array.shape}")
    if array.size == 0:
        raise VoxelFileError(path, f"voxel array is empty (shape {array.shape})")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise VoxelFileError(path, f"{int(np.count_nonzero(~np.isfinite(array)))} voxels are NaN or infinite")
    if threshold is not None:
        return (array > threshold).astype(np.uint8)
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    values = np.unique(array)
    if np.all(np.isin(values, (0, 1))):
        return array.astype(np.uint8)
    if np.all(np.isin(values, (0, 255))):
        return (array == 255).astype(np.uint8)
    raise NotBinaryError(
        path,
        f"values are not binary ({values.size} distinct values between {values.min()} and {values.max()}); "
        "give an explicit threshold (voxels above it become the hard phase)",
    )


def check_model_grid(voxels: np.ndarray, size: int, path: str | os.PathLike = "<array>") -> None:
    """Refuse a structure that is not the ``size**3`` grid a model was trained on."""
    if voxels.shape != (size, size, size):
        raise VoxelFileError(path, f"the model needs a {size}x{size}x{size} grid; this structure is {'x'.join(map(str, voxels.shape))}")


# --------------------------------------------------------------------------- reading


def read_voxels(path: str | os.PathLike, *, index: int | None = None, threshold: float | None = None) -> np.ndarray:
    """Read a binary voxel structure.

    Parameters
    ----------
    path : str or os.PathLike
        File in one of :data:`READ_EXTENSIONS`.
    index : int, optional
        Which structure of a stack (HDF5 ``microstructures`` of shape
        (N, nx, ny, nz)); required when the stack holds more than one.
    threshold : float, optional
        For grey-scale data: voxels above it become the hard phase. Never applied
        silently.

    Returns
    -------
    (nx, ny, nz) ndarray of uint8, 1 = hard phase.
    """
    return read_voxel_file(path, index=index, threshold=threshold)[0]


def read_voxel_file(
    path: str | os.PathLike, *, index: int | None = None, threshold: float | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Like :func:`read_voxels`, also returning the metadata stored with the structure."""
    path = Path(path)
    ext = _extension(path)
    if not path.exists():
        raise VoxelFileError(path, "file does not exist")
    if path.is_dir():
        raise VoxelFileError(path, "is a folder, not a file")
    if path.stat().st_size == 0:
        raise VoxelFileError(path, "file is empty")
    if not os.access(path, os.R_OK):
        raise VoxelFileError(path, "file is not readable (permission denied)")
    reader = _READERS[".h5" if ext == ".hdf5" else ".tif" if ext == ".tiff" else ext]
    try:
        array, metadata = reader(path, index)
    except VoxelFileError:
        raise
    except Exception as exc:  # every library has its own errors for a corrupt file
        raise VoxelFileError(path, f"cannot read {ext} file, it is truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    return as_binary(array, path, threshold=threshold), metadata


def _read_npy(path: Path, index: int | None) -> tuple[np.ndarray, dict]:
    array = np.load(path, allow_pickle=False)
    meta = path.with_name(path.name + ".json")
    metadata = json.loads(meta.read_text()) if meta.exists() else {}
    return array, metadata


def _read_npz(path: Path, index: int | None) -> tuple[np.ndarray, dict]:
    with np.load(path, allow_pickle=False) as archive:
        names = [n for n in archive.files if n != "metadata"]
        if "voxels" in names:
            name = "voxels"
        elif len(names) == 1:
            name = names[0]
        else:
            raise VoxelFileError(path, f"archive holds {names or 'no arrays'}; expected one array or one named 'voxels'")
        metadata = json.loads(str(archive["metadata"])) if "metadata" in archive.files else {}
        return archive[name], metadata


def _read_h5(path: Path, index: int | None) -> tuple[np.ndarray, dict]:
    import h5py

    with h5py.File(path, "r") as f:
        if DATASET_NAME not in f:
            raise VoxelFileError(path, f"no '{DATASET_NAME}' dataset in this HDF5 file (found: {', '.join(f.keys()) or 'nothing'})")
        data = f[DATASET_NAME]
        metadata = json.loads(f.attrs["metadata"]) if "metadata" in f.attrs else {}
        if data.ndim == 3:
            return data[()], metadata
        if data.ndim != 4:
            raise VoxelFileError(path, f"'{DATASET_NAME}' must be (N, nx, ny, nz) or (nx, ny, nz), got shape {data.shape}")
        n = data.shape[0]
        if index is None:
            if n != 1:
                raise VoxelFileError(path, f"holds a stack of {n} structures; choose one with an index in 0..{n - 1}")
            index = 0
        if not -n <= index < n:
            raise VoxelFileError(path, f"index {index} is outside the stack of {n} structures")
        sample_meta = {}
        for key in ("properties", "field_index", "filter_index", "volume_fraction"):
            if key in f and f[key].shape[:1] == (n,):
                value = f[key][index]
                sample_meta[key] = value.tolist() if hasattr(value, "tolist") else value
        if "properties" in sample_meta and "names" in f["properties"].attrs:
            names = [str(s) for s in f["properties"].attrs["names"]]
            sample_meta["properties"] = dict(zip(names, sample_meta["properties"]))
        return data[index], {**metadata, **sample_meta, "index": int(index) % n}


def _read_vti(path: Path, index: int | None) -> tuple[np.ndarray, dict]:
    import pyvista as pv

    grid = pv.read(path)
    if not isinstance(grid, pv.ImageData):
        raise VoxelFileError(path, f"expected VTK ImageData, got {type(grid).__name__}")
    if VTK_ARRAY_NAME in grid.cell_data:
        shape = tuple(d - 1 for d in grid.dimensions)
        flat = grid.cell_data[VTK_ARRAY_NAME]
    elif grid.cell_data.keys():
        shape = tuple(d - 1 for d in grid.dimensions)
        flat = grid.cell_data[grid.cell_data.keys()[0]]
    elif grid.point_data.keys():
        shape = tuple(grid.dimensions)
        flat = grid.point_data[grid.point_data.keys()[0]]
    else:
        raise VoxelFileError(path, "the image holds no cell or point data")
    # VTK stores x fastest: Fortran order in (x, y, z).
    array = np.asarray(flat).reshape(shape, order="F")
    metadata = {}
    if "metadata" in grid.field_data:
        metadata = json.loads(str(np.asarray(grid.field_data["metadata"])[0]))
    return array, metadata


def _read_tif(path: Path, index: int | None) -> tuple[np.ndarray, dict]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.pages:
            raise VoxelFileError(path, "cannot read .tif file, it is truncated or corrupt (no image pages)")
        array = tif.asarray()
        metadata = tif.shaped_metadata[0] if tif.is_shaped and tif.shaped_metadata else {}
    metadata = {k: v for k, v in metadata.items() if k != "shape"}
    return array, metadata.get("vaereg", {}) if isinstance(metadata.get("vaereg"), dict) else metadata


def _read_raw(path: Path, index: int | None) -> tuple[np.ndarray, dict]:
    meta_path = sidecar_path(path)
    if not meta_path.exists():
        raise VoxelFileError(path, f"missing JSON sidecar {meta_path.name} (it gives shape, dtype and order of the raw data)")
    try:
        meta = json.loads(meta_path.read_text())
        shape = tuple(int(s) for s in meta["shape"])
        dtype = np.dtype(meta.get("dtype", "uint8"))
        order = meta.get("order", "C")
    except (ValueError, KeyError, TypeError) as exc:
        raise VoxelFileError(meta_path, f"invalid sidecar: needs 'shape' and optionally 'dtype' and 'order' ({exc})") from exc
    if order not in ("C", "F"):
        raise VoxelFileError(meta_path, f"order must be 'C' or 'F', got {order!r}")
    expected = int(np.prod(shape)) * dtype.itemsize
    actual = path.stat().st_size
    if actual != expected:
        raise VoxelFileError(path, f"size is {actual} bytes, but the sidecar's shape {shape} of {dtype} needs {expected} (truncated or wrong sidecar)")
    array = np.fromfile(path, dtype=dtype).reshape(shape, order=order)
    return array, meta.get("metadata", {})


_READERS = {".npy": _read_npy, ".npz": _read_npz, ".h5": _read_h5, ".vti": _read_vti, ".tif": _read_tif, ".raw": _read_raw}


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_paths(*targets: Path, overwrite: bool = False) -> Iterator[list[Path]]:
    """Temporary paths in the targets' folders, renamed onto the targets on success.

    Refuses existing targets unless ``overwrite``; on any error the temporary
    files are removed and the targets are untouched. Each temporary name keeps
    its target's extension, which some writers use to pick the format.
    """
    for target in targets:
        if target.exists() and not overwrite:
            raise VoxelFileError(target, "file exists; pass overwrite=True (or --overwrite) to replace it")
        if target.is_dir():
            raise VoxelFileError(target, "is a folder")
        if not target.parent.is_dir():
            raise VoxelFileError(target, f"folder {target.parent} does not exist")
        if not os.access(target.parent, os.W_OK):
            raise VoxelFileError(target, f"folder {target.parent} is not writable (permission denied)")
    temps: list[Path] = []
    try:
        for target in targets:
            temps.append(_create_temp(target))
        yield temps
        for temp, target in zip(temps, targets):
            os.replace(temp, target)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


def _create_temp(target: Path) -> Path:
    """Create an empty, uniquely named file beside ``target`` with the usual permissions.

    Unlike :func:`tempfile.mkstemp` (mode 0600) the mode honours the umask, so
    the renamed file has the permissions of any other file the user writes.
    """
    for _ in range(100):
        temp = target.parent / f".{target.stem}.{secrets.token_hex(4)}.tmp{target.suffix}"
        try:
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return temp
        except FileExistsError:
            continue
    raise VoxelFileError(target, "cannot create a temporary file beside it")


def write_voxels(
    path: str | os.PathLike,
    voxels: np.ndarray,
    *,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a binary structure atomically; the format follows the extension.

    Parameters
    ----------
    path : str or os.PathLike
        Target file, one of :data:`WRITE_EXTENSIONS`.
    voxels : (nx, ny, nz) array
        Binary structure (validated with :func:`as_binary`).
    metadata : dict, optional
        JSON-able provenance and properties. Stored inside the file where the
        format allows (npz, h5 attributes, vti field data, tif description,
        raw sidecar) and in a ``.json`` sidecar for ``.npy``.
    overwrite : bool
        Replace an existing file; without it an existing file is an error.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    ext = _extension(path)
    voxels = as_binary(voxels, path)
    text = json.dumps(metadata or {}, default=_json_default)
    if ext == ".raw" or (ext == ".npy" and metadata):
        targets = (path, path.with_name(path.name + ".json"))
    else:
        targets = (path,)
    with atomic_paths(*targets, overwrite=overwrite) as temps:
        try:
            _WRITERS[".h5" if ext == ".hdf5" else ".tif" if ext == ".tiff" else ext](temps, voxels, text)
        except OSError as exc:
            raise VoxelFileError(path, f"cannot write: {exc}") from exc
    return path


def _write_npy(temps: list[Path], voxels: np.ndarray, text: str) -> None:
    with open(temps[0], "wb") as f:
        np.save(f, voxels)
    if len(temps) > 1:
        temps[1].write_text(text)


def _write_npz(temps: list[Path], voxels: np.ndarray, text: str) -> None:
    with open(temps[0], "wb") as f:
        np.savez_compressed(f, voxels=voxels, metadata=np.array(text))


def _write_h5(temps: list[Path], voxels: np.ndarray, text: str) -> None:
    import h5py

    with h5py.File(temps[0], "w") as f:
        f.create_dataset(DATASET_NAME, data=voxels[None], chunks=(1, *voxels.shape), compression="gzip", compression_opts=4)
        f.attrs["metadata"] = text


def _write_vti(temps: list[Path], voxels: np.ndarray, text: str) -> None:
    import pyvista as pv

    grid = pv.ImageData(dimensions=tuple(n + 1 for n in voxels.shape))
    grid.cell_data[VTK_ARRAY_NAME] = voxels.ravel(order="F")
    grid.field_data["metadata"] = np.array([text])
    grid.save(temps[0], binary=True)


def _write_tif(temps: list[Path], voxels: np.ndarray, text: str) -> None:
    import tifffile

    tifffile.imwrite(temps[0], voxels, photometric="minisblack", metadata={"vaereg": json.loads(text)}, compression="zlib")


def _write_raw(temps: list[Path], voxels: np.ndarray, text: str) -> None:
    voxels.tofile(temps[0])
    sidecar = {"shape": list(voxels.shape), "dtype": "uint8", "order": "C", "metadata": json.loads(text)}
    temps[1].write_text(json.dumps(sidecar, indent=2))


_WRITERS = {".npy": _write_npy, ".npz": _write_npz, ".h5": _write_h5, ".vti": _write_vti, ".tif": _write_tif, ".raw": _write_raw}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --------------------------------------------------------------------------- surfaces


def hard_phase_surface(voxels: np.ndarray, *, smooth: bool = True, spacing: float = 1.0):
    """Closed triangle surface of the hard phase as a :class:`pyvista.PolyData`.

    The grid is padded with one layer of soft phase so that the surface closes
    at the box faces (watertight, printable). ``smooth=True`` contours the
    voxel-centre indicator at 0.5 (flying edges); ``smooth=False`` gives the
    blocky voxel faces.
    """
    import pyvista as pv

    padded = np.pad(np.asarray(voxels, dtype=np.uint8), 1)
    if smooth:
        grid = pv.ImageData(dimensions=padded.shape, spacing=(spacing,) * 3, origin=(-0.5 * spacing,) * 3)
        grid.point_data["phase"] = padded.ravel(order="F").astype(np.float32)
        surface = grid.contour([0.5], scalars="phase", method="flying_edges")
    else:
        grid = pv.ImageData(dimensions=tuple(n + 1 for n in padded.shape), spacing=(spacing,) * 3, origin=(-spacing,) * 3)
        grid.cell_data["phase"] = padded.ravel(order="F")
        surface = grid.threshold(0.5, scalars="phase").extract_surface(algorithm="dataset_surface")
    return surface.triangulate().clean()


def export_stl(path: str | os.PathLike, voxels: np.ndarray, *, smooth: bool = True, spacing: float = 1.0, overwrite: bool = False) -> Path:
    """Write the hard-phase surface as a binary STL file (atomic, no silent overwrite)."""
    path = Path(path)
    if path.suffix.lower() != ".stl":
        raise VoxelFileError(path, "surface export needs the .stl extension")
    voxels = as_binary(voxels, path)
    if not voxels.any():
        raise VoxelFileError(path, "the structure has no hard phase, so there is no surface to export")
    surface = hard_phase_surface(voxels, smooth=smooth, spacing=spacing)
    with atomic_paths(path, overwrite=overwrite) as temps:
        surface.save(temps[0], binary=True)
    return path
