"""Reading and writing binary voxel structures in the formats materials scientists use.

Formats (by extension): ``.npy``, ``.npz``, ``.h5``/``.hdf5`` (the dataset
layout of DESIGN.md section 3: one structure or a stack with an index),
``.vti`` (VTK ImageData, one voxel per cell; opens in ParaView), ``.tif``/
``.tiff`` (multi-page, one page per index of axis 0; opens in Fiji) and
``.raw`` with a JSON sidecar (shape, dtype, order). The hard-phase surface
is exported as ``.stl`` by :func:`export_stl`.

Every problem is reported as :class:`~vaereg_core.errors.VoxelFileError`
(corrupt, unsupported, too large: its subclasses) naming the file and the
reason; no file, however damaged or crafted, crashes, hangs or exhausts the
reading process, or makes it read another file. Writes go to a temporary
file in the target folder and are renamed into place, so a failed or killed
write leaves the old file (temporary files of killed writers are removed by
the next write), and an existing file is only replaced with
``overwrite=True``. Data + sidecar pairs carry a checksum so that no kill
splits them (:mod:`vaereg_core.voxel_safety.pairs`).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from vaereg_core import atomic_files
from vaereg_core.atomic_files import remove_dead_writers_files
from vaereg_core.errors import CorruptVoxelFileError, NotBinaryError, VoxelFileError
from vaereg_core.resources import is_shipped_sample
from vaereg_core.voxel_safety import hdf5, headers, library_log, pairs
from vaereg_core.voxel_safety.metadata import as_metadata_dict, parse_json
from vaereg_core.voxel_safety.budget import max_voxel_bytes
from vaereg_core.voxel_safety.sandbox import run_reader
from vaereg_core.voxel_safety.vti_header import read_vti_header

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
    """Like :func:`read_voxels`, also returning the metadata stored with the structure.

    Every header is checked before the data are allocated (see
    :mod:`vaereg_core.voxel_safety`); ``.h5`` and ``.vti`` files are read in a
    child process, as their libraries can abort or hang on a damaged file
    (except the installation's own samples, which are trusted).
    Metadata that is valid JSON but not an object comes back under the key
    ``"metadata"``.

    Raises
    ------
    CorruptVoxelFileError
        Truncated, damaged or inconsistent files (and a reader that crashed or hung on one).
    UnsupportedVoxelFileError
        Valid files this installation cannot or will not read (a missing codec, external data).
    VoxelFileTooLargeError
        The file declares more than ``$VAEREG_MAX_VOXEL_BYTES`` (default 2 GB).
    NotBinaryError
        Grey-scale data and no threshold.
    VoxelFileError
        Any other problem with the file (missing, unreadable, a folder).
    """
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
    max_voxel_bytes()  # a bad $VAEREG_MAX_VOXEL_BYTES is a setting to name, not a corrupt file (the readers' errors are)
    if ext == ".vti":
        read_vti_header(path)  # a clear message at once, before a child process starts
    if ext in _READ_IN_CHILD and not is_shipped_sample(path):  # a child costs 0.7 s: the app's start-up sample is trusted
        return run_reader(path, "vaereg_core.voxel_io:read_in_this_process", index, threshold)
    return read_in_this_process(path, index, threshold)


def read_in_this_process(path: Path, index: int | None, threshold: float | None) -> tuple[np.ndarray, dict[str, Any]]:
    """The body of :func:`read_voxel_file` for any format, in the calling process (the child's entry)."""
    ext = _extension(path)
    with library_log.captured("tifffile", "h5py") as messages:
        try:
            array, metadata = _READERS[_canonical(ext)](path, index)
        except VoxelFileError:
            raise
        except Exception as exc:  # every library has its own errors for a corrupt file
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            raise CorruptVoxelFileError(path, f"cannot read {ext} file, it is truncated or corrupt ({detail}){library_log.said(messages, 'the library')}") from exc
    return as_binary(array, path, threshold=threshold), as_metadata_dict(metadata)


def _canonical(ext: str) -> str:
    return ".h5" if ext == ".hdf5" else ".tif" if ext == ".tiff" else ext


def _read_npy(path: Path, index: int | None) -> tuple[np.ndarray, Any]:
    array = headers.read_npy(path)
    sidecar = path.with_name(path.name + ".json")
    record = pairs.sidecar_for(path, sidecar, sidecar)
    return array, {} if record is None else pairs.unstamped(record)


def _read_npz(path: Path, index: int | None) -> tuple[np.ndarray, Any]:
    array, text = headers.read_npz(path)
    return array, {} if text is None else parse_json(path, text)


def _read_h5(path: Path, index: int | None) -> tuple[np.ndarray, Any]:
    import h5py

    with h5py.File(path, "r") as f:
        if f.get(DATASET_NAME, getlink=True) is None:
            raise VoxelFileError(path, f"no '{DATASET_NAME}' dataset in this HDF5 file (found: {', '.join(list(f.keys())[:20]) or 'nothing'})")
        data = hdf5.checked_dataset(f, DATASET_NAME, path)
        text = hdf5.text_attribute(f, "metadata", path)
        metadata = as_metadata_dict(parse_json(path, text)) if text is not None else {}
        if data.ndim == 3:
            hdf5.check_selection(data, data.shape, path)
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
        hdf5.check_selection(data, data.shape[1:], path)
        sample_meta = {}
        for key in ("properties", "field_index", "filter_index", "volume_fraction"):
            if f.get(key, getlink=True) is not None:
                values = hdf5.checked_dataset(f, key, path)
                if values.shape[:1] == (n,) and hdf5.small_row(values):
                    value = values[index]
                    sample_meta[key] = value.tolist() if hasattr(value, "tolist") else value
        names = hdf5.attribute(f["properties"], "names", path) if "properties" in sample_meta else None
        if names is not None:
            sample_meta["properties"] = dict(zip([str(s) for s in names], sample_meta["properties"]))
        return data[index], {**metadata, **sample_meta, "index": int(index) % n}


def _read_vti(path: Path, index: int | None) -> tuple[np.ndarray, Any]:
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkCommonCore import vtkOutputWindow, vtkStringOutputWindow
    from vtkmodules.vtkIOXML import vtkXMLImageDataReader

    header = read_vti_header(path)
    log = vtkStringOutputWindow()
    vtkOutputWindow.SetInstance(log)  # VTK's errors become text for the message, not terminal noise
    reader = vtkXMLImageDataReader()
    reader.SetFileName(os.fspath(path))
    reader.Update()
    said = " ".join(log.GetOutput().split())
    if "ERROR" in said.upper():
        raise CorruptVoxelFileError(path, f"cannot read .vti file, it is truncated or corrupt; VTK said: {said[:300]}")
    image = reader.GetOutput()
    cells, points = image.GetCellData(), image.GetPointData()
    if cells.GetArray(VTK_ARRAY_NAME) is not None:
        flat, shape = cells.GetArray(VTK_ARRAY_NAME), header.cells
    elif cells.GetNumberOfArrays():
        flat, shape = cells.GetArray(0), header.cells
    elif points.GetNumberOfArrays():
        flat, shape = points.GetArray(0), tuple(n + 1 for n in header.cells)
    else:
        raise VoxelFileError(path, "the image holds no cell or point data")
    if flat is None or flat.GetNumberOfComponents() != 1 or flat.GetNumberOfTuples() != np.prod(shape):
        raise CorruptVoxelFileError(path, f"the voxel array does not hold one value per voxel of the {'x'.join(map(str, shape))} extent")
    # VTK stores x fastest: Fortran order in (x, y, z).
    array = vtk_to_numpy(flat).reshape(shape, order="F").copy()
    field = image.GetFieldData().GetAbstractArray("metadata")
    if field is None or not field.IsA("vtkStringArray") or field.GetNumberOfValues() == 0:
        return array, {}
    return array, parse_json(path, field.GetValue(0))


def _read_tif(path: Path, index: int | None) -> tuple[np.ndarray, Any]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        headers.check_tiff(path, tif)
        array = tif.asarray()
        metadata = tif.shaped_metadata[0] if tif.is_shaped and tif.shaped_metadata else {}
    metadata = {k: v for k, v in metadata.items() if k != "shape"}
    return array, metadata.get("vaereg", {}) if isinstance(metadata.get("vaereg"), dict) else metadata


def _read_raw(path: Path, index: int | None) -> tuple[np.ndarray, Any]:
    sidecar = sidecar_path(path)
    record = pairs.sidecar_for(path, sidecar, path.with_name(path.name + ".json"))
    if record is None:
        raise VoxelFileError(path, f"missing JSON sidecar {sidecar.name} (it gives shape, dtype and order of the raw data)")
    shape, dtype, order = headers.raw_layout(path, sidecar, record)
    array = np.fromfile(path, dtype=dtype).reshape(shape, order=order)
    return array, record.get("metadata", {})


_READERS = {".npy": _read_npy, ".npz": _read_npz, ".h5": _read_h5, ".vti": _read_vti, ".tif": _read_tif, ".raw": _read_raw}
_READ_IN_CHILD = (".h5", ".hdf5", ".vti")


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_paths(*targets: Path, overwrite: bool = False) -> Iterator[list[Path]]:
    """:func:`vaereg_core.atomic_files.atomic_paths` after the checks a user's export needs.

    Refuses existing targets unless ``overwrite``, folders, and folders that
    are missing or not writable, each as a :class:`VoxelFileError` naming the file.
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
    try:
        with atomic_files.atomic_paths(*targets) as temps:
            yield temps
    except FileExistsError as exc:  # no free temporary name (never in practice)
        raise VoxelFileError(targets[0], str(exc)) from None


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
        raw sidecar) and in a ``.json`` sidecar for ``.npy``; an existing
        ``.npy`` sidecar is rewritten even without metadata, so old properties
        never stay attached to new voxels.
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
    sidecar = path.with_name(path.name + ".json")
    if ext in (".raw", ".npy"):
        pairs.recover(path, sidecar)
    else:
        remove_dead_writers_files(path)
    targets = (path, sidecar) if ext == ".raw" or (ext == ".npy" and (metadata or sidecar.exists())) else (path,)
    with atomic_paths(*targets, overwrite=overwrite) as temps:
        try:
            _WRITERS[_canonical(ext)](temps, voxels, text)
        except OSError as exc:
            raise VoxelFileError(path, f"cannot write: {exc}") from exc
    return path


def _write_npy(temps: list[Path], voxels: np.ndarray, text: str) -> None:
    with open(temps[0], "wb") as f:
        np.save(f, voxels)
    if len(temps) > 1:
        temps[1].write_text(json.dumps(pairs.stamp(json.loads(text), temps[0])))


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
    temps[1].write_text(json.dumps(pairs.stamp(sidecar, temps[0]), indent=2))


_WRITERS = {".npy": _write_npy, ".npz": _write_npz, ".h5": _write_h5, ".vti": _write_vti, ".tif": _write_tif, ".raw": _write_raw}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --------------------------------------------------------------------------- surfaces


def level_surface(values: np.ndarray, spacing: float = 1.0):
    """Where a voxel-centre field crosses 0.5, as a plain ``vtkPolyData`` (flying edges, point array ``phase``).

    ``values`` (nx, ny, nz) is the hard-phase indicator (or a block-averaged
    fraction, for thumbnails) of cells ``spacing`` wide, cell ``i`` centred at
    ``(i + 0.5) * spacing``; it is padded with one layer of zeros so that the
    surface closes at the box faces. Flying edges gives triangles with shared
    points already: cleaning them changed nothing and cost 60-120 ms of each
    structure shown (51³). VTK's own modules, not pyvista: the app draws its
    first structure before pyvista (and the matplotlib it imports) is loaded.
    """
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkDataObject, vtkImageData
    from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D

    padded = np.pad(np.asarray(values, dtype=np.float32), 1)
    grid = vtkImageData()
    grid.SetDimensions(padded.shape)
    grid.SetSpacing((spacing,) * 3)
    grid.SetOrigin((-0.5 * spacing,) * 3)
    phase = numpy_to_vtk(padded.ravel(order="F"), deep=True)
    phase.SetName("phase")
    grid.GetPointData().SetScalars(phase)
    contour = vtkFlyingEdges3D()
    contour.SetInputData(grid)
    contour.SetComputeNormals(False)
    contour.SetComputeGradients(False)
    contour.SetComputeScalars(True)
    contour.SetInputArrayToProcess(0, 0, 0, vtkDataObject.FIELD_ASSOCIATION_POINTS, "phase")
    contour.SetNumberOfContours(1)
    contour.SetValue(0, 0.5)
    contour.Update()
    return contour.GetOutput()


def hard_phase_surface(voxels: np.ndarray, *, smooth: bool = True, spacing: float = 1.0):
    """Closed triangle surface of the hard phase as a :class:`pyvista.PolyData`.

    The grid is padded with one layer of soft phase so that the surface closes
    at the box faces (watertight, printable). ``smooth=True`` contours the
    voxel-centre indicator at 0.5 (flying edges); ``smooth=False`` gives the
    blocky voxel faces.
    """
    import pyvista as pv

    if smooth:
        return pv.wrap(level_surface(voxels, spacing))
    padded = np.pad(np.asarray(voxels, dtype=np.uint8), 1)
    grid = pv.ImageData(dimensions=tuple(n + 1 for n in padded.shape), spacing=(spacing,) * 3, origin=(-spacing,) * 3)
    grid.cell_data["phase"] = padded.ravel(order="F")
    return grid.threshold(0.5, scalars="phase").extract_surface(algorithm="dataset_surface").triangulate().clean()


def export_stl(path: str | os.PathLike, voxels: np.ndarray, *, smooth: bool = True, spacing: float = 1.0, overwrite: bool = False) -> Path:
    """Write the hard-phase surface as a binary STL file (atomic, no silent overwrite)."""
    path = Path(path)
    if path.suffix.lower() != ".stl":
        raise VoxelFileError(path, "surface export needs the .stl extension")
    voxels = as_binary(voxels, path)
    if not voxels.any():
        raise VoxelFileError(path, "the structure has no hard phase, so there is no surface to export")
    surface = hard_phase_surface(voxels, smooth=smooth, spacing=spacing)
    remove_dead_writers_files(path)
    with atomic_paths(path, overwrite=overwrite) as temps:
        surface.save(temps[0], binary=True)
    return path
