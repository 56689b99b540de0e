"""The dataset pipeline: resumable build (survives SIGKILL), recipe checks, splits,
materialisation, the torch Dataset and the report, on a tiny recipe."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from vaereg_core.dataset import split_of, subset_samples
from vaereg_core.dataset.build import SolverSettings, build_dataset
from vaereg_core.dataset.materialize import materialize
from vaereg_core.dataset.report import write_report
from vaereg_core.dataset.table import DatasetError, read_table
from vaereg_core.microstructure import Recipe

TINY = Recipe(seed=3, n_fields=2, size=9)
TINY_ARGS = ["--seed", "3", "--fields", "2", "--size", "9"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The two-morphology subset of the tiny recipe, built without interruption."""
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    summary = build_dataset(path, recipe=TINY, subset="two-morphology")
    assert summary.computed == 4 and not summary.failures
    return path


def test_subset_order_puts_two_morphology_first():
    two = subset_samples(TINY, "two-morphology")
    full = subset_samples(TINY, "all")
    assert len(two) == 4 and sorted(full) == list(range(128))
    assert full[:4] == two
    with pytest.raises(ValueError):
        subset_samples(TINY, "some")


def test_table_contents(built):
    table = read_table(built)
    assert len(table) == 4
    assert sorted(table.filter_index.tolist()) == [15, 15, 48, 48]
    assert np.all(table.properties[:, :3] > 2.4) and np.all(table.properties[:, :3] < 120)
    # Needles along x (filter 48) are stiffer along x than plates normal to x (filter 15).
    for field in range(2):
        rows = table.field_index == field
        c11 = dict(zip(table.filter_index[rows].tolist(), table.properties[rows, 0].tolist()))
        vf = dict(zip(table.filter_index[rows].tolist(), table.volume_fraction[rows].tolist()))
        if abs(vf[48] - vf[15]) < 0.1:
            assert c11[48] > c11[15]
    assert table.solver["discretization"] == "rotated"
    with h5py.File(built) as f:
        assert list(f["properties"].attrs["names"]) == ["C11", "C22", "C33", "C12", "C13", "C23"]
        assert f["properties"].attrs["units"] == "GPa"
        assert json.loads(f.attrs["recipe"])["seed"] == 3


def test_resume_after_sigkill_mid_build_equals_uninterrupted(tmp_path, built):
    path = tmp_path / "killed.h5"
    cmd = [sys.executable, "-m", "vaereg_core.cli", "dataset", "build", "--out", str(path), *TINY_ARGS, "--subset", "all"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            if len(read_table(path)) >= 6:
                break
        except DatasetError:
            continue  # not written yet
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = read_table(path)  # never corrupt, whenever the kill came
    assert 6 <= len(partial) < 128
    summary = build_dataset(path, recipe=TINY, subset="all", limit=10)
    assert summary.already_done == len(partial) and summary.computed == 10
    # A kill between writing and renaming leaves the writer's temporary file; the next write removes it.
    assert not [p for p in os.listdir(tmp_path) if p != "killed.h5"], "temporary file left behind"
    table = read_table(path)
    reference = read_table(built)
    for row, sample in enumerate(reference.sample):
        i = int(np.nonzero(table.sample == sample)[0][0])
        np.testing.assert_allclose(table.properties[i], reference.properties[row], rtol=1e-6)
    np.testing.assert_array_equal(np.sort(table.sample), table.sample)


@pytest.mark.skipif(os.name != "posix", reason="liveness by PID is POSIX-only (on Windows an open file cannot be deleted)")
def test_a_write_removes_what_killed_writers_left_and_spares_live_ones(built, tmp_path):
    path = tmp_path / "data.h5"
    table = read_table(built)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    left = tmp_path / f".data.h5.{dead.stdout.strip()}.tmp"
    live = tmp_path / f".data.h5.{os.getppid()}.tmp"  # a running process: a writer still at work
    left.write_bytes(b"partial")
    live.write_bytes(b"partial")
    table.write(path)
    assert not left.exists() and live.exists() and len(read_table(path)) == len(table)


def test_refuses_mismatched_recipe_or_solver_and_leaves_the_file(built, tmp_path):
    before = built.read_bytes()
    with pytest.raises(DatasetError, match="recipe mismatch"):
        build_dataset(built, recipe=Recipe(seed=4, n_fields=2, size=9), subset="two-morphology")
    with pytest.raises(DatasetError, match="solver mismatch on 'tol'"):
        build_dataset(built, recipe=TINY, settings=SolverSettings(tol=1e-3))
    assert built.read_bytes() == before


def test_refuses_corrupt_or_foreign_files_without_touching_them(tmp_path):
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    for path, match in ((corrupt, "corrupt"), (foreign, "not a VAEReg dataset")):
        before = path.read_bytes()
        with pytest.raises(DatasetError, match=match):
            build_dataset(path, recipe=TINY)
        assert path.read_bytes() == before
    r = subprocess.run([sys.executable, "-m", "vaereg_core.cli", "dataset", "build", "--out", str(foreign), *TINY_ARGS], capture_output=True, text=True)
    assert r.returncode == 2 and "not a VAEReg dataset" in r.stderr and "Traceback" not in r.stderr


def test_splits_are_reproducible_and_independent_of_what_is_built():
    samples = np.arange(9600)
    a = split_of(samples, 9600, 7)
    assert np.array_equal(a, split_of(samples, 9600, 7))
    assert not np.array_equal(a, split_of(samples, 9600, 8))
    assert [int((a == s).sum()) for s in ("train", "val", "test")] == [5760, 1920, 1920]
    some = np.array([5, 700, 9599])
    assert np.array_equal(split_of(some, 9600, 7), a[some])


def test_materialize_is_deterministic_in_parallel_and_dataset_reads_both_ways(built, tmp_path):
    from vaereg_core.dataset import MicrostructureDataset

    a = materialize(built, tmp_path / "a.h5")
    b = materialize(built, tmp_path / "b.h5", workers=2)  # processes give the same voxels
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert fa["microstructures"].shape == (4, 9, 9, 9) and fa["microstructures"].chunks == (1, 9, 9, 9)
        assert np.array_equal(fa["microstructures"][()], fb["microstructures"][()])
    with pytest.raises(DatasetError, match="exists"):
        materialize(built, a)
    cached = MicrostructureDataset(a, split=None, properties=("C11", "C23"))
    fly = MicrostructureDataset(built, split=None, properties=("C11", "C23"))
    assert cached.cached and not fly.cached and len(cached) == len(fly) == 4
    for i in range(4):
        xc, yc = cached[i]
        xf, yf = fly[i]
        assert xc.shape == (1, 9, 9, 9) and xc.dtype.is_floating_point and yc.shape == (2,)
        assert str(xc.dtype) == "torch.float32" and str(yc.dtype) == "torch.float32"
        assert set(xc.unique().tolist()) <= {0.0, 1.0}
        assert (xc == xf).all() and (yc == yf).all()
    splits = [len(MicrostructureDataset(built, split=s)) for s in ("train", "val", "test")]
    assert sum(splits) == 4
    with pytest.raises(DatasetError, match="unknown properties"):
        MicrostructureDataset(built, properties=("E",))


def test_report_on_a_tiny_dataset(built, tmp_path):
    out = write_report(built, tmp_path / "report")
    for name in ("c11_vs_volume_fraction.png", "two_morphology.png", "histograms.png", "README.md"):
        assert (out / name).stat().st_size > 1000
    text = (out / "README.md").read_text()
    assert "4 of 128 structures" in text and "| C11 (GPa) |" in text
