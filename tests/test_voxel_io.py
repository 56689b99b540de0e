"""Voxel files: bit-exact round trips, atomic writes, and a clear error for every bad input."""

import json
import os

import h5py
import numpy as np
import pytest
import tifffile

from vaereg_core.errors import NotBinaryError, VoxelFileError
from vaereg_core.microstructure import generate
from vaereg_core.voxel_io import (
    WRITE_EXTENSIONS,
    check_model_grid,
    export_stl,
    hard_phase_surface,
    read_voxel_file,
    read_voxels,
    write_voxels,
)


@pytest.fixture(scope="module")
def structure():
    # Non-cubic on purpose: catches any axis-order mistake in a format.
    x = generate(seed=1, field_index=0, filter_index=27, volume_fraction=0.35, size=24)
    return np.ascontiguousarray(x[:24, :20, :16])


@pytest.mark.parametrize("ext", WRITE_EXTENSIONS)
def test_round_trip_is_bit_exact_with_metadata(tmp_path, structure, ext):
    meta = {"model": "test", "target": {"C11": 35.0}, "seed": 3}
    path = write_voxels(tmp_path / f"s{ext}", structure, metadata=meta)
    back, metadata = read_voxel_file(path)
    assert back.dtype == np.uint8 and back.shape == structure.shape
    assert np.array_equal(back, structure)
    assert {k: metadata[k] for k in meta} == meta
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p], "temporary file left behind"


def test_hdf5_stack_needs_an_index(tmp_path, structure):
    stack = np.stack([structure, 1 - structure, structure])
    path = tmp_path / "stack.h5"
    with h5py.File(path, "w") as f:
        f["microstructures"] = stack
        f["properties"] = np.arange(18, dtype=np.float32).reshape(3, 6)
        f["properties"].attrs["names"] = ["C11", "C22", "C33", "C12", "C13", "C23"]
    with pytest.raises(VoxelFileError, match="stack of 3 structures"):
        read_voxels(path)
    x, meta = read_voxel_file(path, index=1)
    assert np.array_equal(x, 1 - structure)
    assert meta["properties"]["C11"] == 6.0 and meta["index"] == 1
    with pytest.raises(VoxelFileError, match="index 3 is outside"):
        read_voxels(path, index=3)


def test_fiji_binary_masks_and_bool_are_binary(tmp_path, structure):
    tifffile.imwrite(tmp_path / "mask.tif", structure * 255)
    assert np.array_equal(read_voxels(tmp_path / "mask.tif"), structure)
    np.save(tmp_path / "b.npy", structure.astype(bool))
    assert np.array_equal(read_voxels(tmp_path / "b.npy"), structure)
    np.save(tmp_path / "f.npy", structure.astype(np.float32))
    assert np.array_equal(read_voxels(tmp_path / "f.npy"), structure)


def test_grey_scale_needs_an_explicit_threshold(tmp_path):
    grey = np.random.default_rng(0).random((8, 8, 8))
    np.save(tmp_path / "grey.npy", grey)
    with pytest.raises(NotBinaryError, match="not binary.*threshold") as info:
        read_voxels(tmp_path / "grey.npy")
    assert "grey.npy" in str(info.value)
    assert np.array_equal(read_voxels(tmp_path / "grey.npy", threshold=0.5), (grey > 0.5).astype(np.uint8))


def test_writes_never_overwrite_silently(tmp_path, structure):
    path = write_voxels(tmp_path / "a.npy", structure)
    before = path.read_bytes()
    with pytest.raises(VoxelFileError, match="exists"):
        write_voxels(path, 1 - structure)
    assert path.read_bytes() == before
    write_voxels(path, 1 - structure, overwrite=True)
    assert np.array_equal(read_voxels(path), 1 - structure)


def test_raw_writes_its_sidecar_and_refuses_if_either_exists(tmp_path, structure):
    path = write_voxels(tmp_path / "a.raw", structure)
    sidecar = json.loads((tmp_path / "a.raw.json").read_text())
    assert sidecar["shape"] == list(structure.shape) and sidecar["dtype"] == "uint8" and sidecar["order"] == "C"
    (tmp_path / "a.raw").unlink()
    with pytest.raises(VoxelFileError, match="a.raw.json: file exists"):
        write_voxels(path, structure)
    assert not (tmp_path / "a.raw").exists()


def test_raw_from_another_tool_with_plain_json_sidecar_in_fortran_order(tmp_path, structure):
    structure.ravel(order="F").tofile(tmp_path / "b.raw")
    (tmp_path / "b.json").write_text(json.dumps({"shape": list(structure.shape), "dtype": "uint8", "order": "F"}))
    assert np.array_equal(read_voxels(tmp_path / "b.raw"), structure)


# ---------------------------------------------------------------- every bad input


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: _write(d / "x.xyz", b"abc"), "unknown extension '.xyz'"),
        (lambda d: d / "missing.npy", "does not exist"),
        (lambda d: _write(d / "empty.npy", b""), "file is empty"),
        (lambda d: _write(d / "bad.npy", b"\x93NUMPY garbage that is not a header"), "truncated or corrupt"),
        (lambda d: _write(d / "bad.h5", b"not an hdf5 file at all"), "truncated or corrupt"),
        (lambda d: _write(d / "bad.vti", b"<VTKFile type='ImageData'><broken"), "truncated or corrupt"),
        (lambda d: _write(d / "bad.tif", b"II*\x00garbage"), "truncated or corrupt"),
        (lambda d: _write(d / "bad.npz", b"PK\x03\x04garbage"), "truncated or corrupt"),
        (lambda d: _write(d / "nosidecar.raw", b"\x00" * 27), "missing JSON sidecar"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(VoxelFileError, match=match) as info:
        read_voxels(path)
    assert os.fspath(path) in str(info.value)


def test_truncated_files(tmp_path, structure):
    for ext in (".npy", ".h5", ".tif", ".vti", ".npz"):
        path = write_voxels(tmp_path / f"t{ext}", structure)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(VoxelFileError, match=str(path.name)):
            read_voxels(path)
    path = write_voxels(tmp_path / "t.raw", structure)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(VoxelFileError, match="truncated or wrong sidecar"):
        read_voxels(path)


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((4, 4)), "expected a 3-D voxel array, got 2-D"),
        (np.zeros((2, 3, 3, 3)), "got 4-D"),
        (np.zeros((0, 4, 4)), "empty"),
        (np.where(np.eye(4)[:, :, None] > 0, np.nan, 0.0) * np.ones((4, 4, 4)), "NaN or infinite"),
        (np.full((3, 3, 3), np.inf), "NaN or infinite"),
        (np.full((3, 3, 3), 2), "not binary"),
    ],
)
def test_bad_arrays(tmp_path, array, match):
    np.save(tmp_path / "a.npy", array)
    with pytest.raises(VoxelFileError, match=match):
        read_voxels(tmp_path / "a.npy")
    with pytest.raises(VoxelFileError, match=match):
        write_voxels(tmp_path / "b.npy", array)
    assert not (tmp_path / "b.npy").exists()


def test_not_cubic_is_viewable_but_flagged_for_the_model(tmp_path, structure):
    path = write_voxels(tmp_path / "nc.npy", structure)
    x = read_voxels(path)
    with pytest.raises(VoxelFileError, match="needs a 51x51x51 grid; this structure is 24x20x16"):
        check_model_grid(x, 51, path)
    check_model_grid(np.zeros((51, 51, 51), np.uint8), 51)


def test_unreadable_and_unwritable_paths(tmp_path, structure, monkeypatch):
    path = write_voxels(tmp_path / "a.npy", structure)
    folder = tmp_path / "ro"
    folder.mkdir()
    path.chmod(0)
    folder.chmod(0o500)
    if os.geteuid() == 0:
        # Root ignores permission bits; let os.access answer as it would for a user.
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if os.fspath(p) in (os.fspath(path), os.fspath(folder)) else real_access(p, mode))
    with pytest.raises(VoxelFileError, match="a.npy: file is not readable"):
        read_voxels(path)
    with pytest.raises(VoxelFileError, match="ro is not writable"):
        write_voxels(folder / "b.npy", structure)
    assert not (folder / "b.npy").exists()


def test_writing_into_a_missing_folder_or_a_folder(tmp_path, structure):
    with pytest.raises(VoxelFileError, match="does not exist"):
        write_voxels(tmp_path / "nope" / "a.npy", structure)
    (tmp_path / "d.npy").mkdir()
    with pytest.raises(VoxelFileError, match="folder"):
        write_voxels(tmp_path / "d.npy", structure, overwrite=True)


def test_failed_write_leaves_nothing(tmp_path, structure, monkeypatch):
    import vaereg_core.voxel_io as vio

    def broken(temps, voxels, text):
        temps[0].write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setitem(vio._WRITERS, ".npy", broken)
    with pytest.raises(VoxelFileError, match="disk full"):
        write_voxels(tmp_path / "a.npy", structure)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- surfaces


def test_smooth_surface_is_closed_and_encloses_the_hard_volume(structure):
    surface = hard_phase_surface(structure, smooth=True)
    assert surface.n_cells > 0
    assert surface.n_open_edges == 0
    assert surface.is_all_triangles and surface.n_points == surface.clean().n_points  # no duplicate points to merge
    # Contouring at 0.5 between voxel centres keeps the volume close to the voxel count.
    assert surface.volume == pytest.approx(structure.sum(), rel=0.1)


def test_blocky_surface_volume_is_the_voxel_count():
    cube = np.zeros((6, 6, 6), np.uint8)
    cube[1:4, 2:5, 0:6] = 1
    surface = hard_phase_surface(cube, smooth=False)
    assert surface.n_open_edges == 0
    assert surface.volume == pytest.approx(cube.sum())


def test_stl_export(tmp_path, structure):
    import pyvista as pv

    path = export_stl(tmp_path / "s.stl", structure)
    mesh = pv.read(path)
    assert mesh.n_cells == hard_phase_surface(structure).n_cells
    with pytest.raises(VoxelFileError, match="exists"):
        export_stl(path, structure)
    with pytest.raises(VoxelFileError, match="no hard phase"):
        export_stl(tmp_path / "e.stl", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(VoxelFileError, match=".stl extension"):
        export_stl(tmp_path / "e.obj", structure)
