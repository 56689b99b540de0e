"""``vaereg generate | info | convert`` end to end, in a subprocess like a user runs them."""

import json
import subprocess
import sys

import numpy as np
import pytest

from vaereg_core.voxel_io import read_voxel_file, read_voxels


def vaereg(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "vaereg_core.cli", *map(str, args)], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"vaereg {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


def test_help_for_every_command():
    for cmd in ([], ["generate"], ["info"], ["convert"], ["dataset"], ["dataset", "build"]):
        out = vaereg(*cmd, "--help").stdout
        assert "usage: vaereg" in out


def test_generate_then_info_then_convert(tmp_path):
    vti = tmp_path / "a.vti"
    out = vaereg("generate", "--sigma", 8, 1, 1, "--vf", 0.3, "--seed", 4, "--size", 31, "-o", vti).stdout
    assert "volume fraction 0.3000" in out
    info = json.loads(vaereg("info", vti, "--json").stdout)
    assert info["shape"] == [31, 31, 31] and info["cubic"]
    assert abs(info["volume_fraction"] - 0.3) <= 1 / 31**3
    assert info["metadata"]["sigma"] == [8, 1, 1]
    # Needles along x: long correlation along x only.
    assert info["correlation_length"][0] > 3 * info["correlation_length"][1]
    text = vaereg("info", vti).stdout
    assert "31 x 31 x 31" in text and "volume fraction  0.30" in text
    for ext in (".npy", ".h5", ".tif", ".raw", ".npz"):
        vaereg("convert", vti, tmp_path / f"b{ext}")
        assert np.array_equal(read_voxels(tmp_path / f"b{ext}"), read_voxels(vti))
    _, meta = read_voxel_file(tmp_path / "b.h5")
    assert meta["converted_from"] == str(vti) and meta["seed"] == 4
    vaereg("convert", vti, tmp_path / "s.stl")
    assert (tmp_path / "s.stl").stat().st_size > 1000


def test_errors_are_one_line_and_exit_2(tmp_path):
    vaereg("generate", "--vf", 0.5, "--size", 9, "-o", tmp_path / "a.npy")
    r = vaereg("generate", "--vf", 0.5, "--size", 9, "-o", tmp_path / "a.npy", check=False)
    assert r.returncode == 2 and "file exists" in r.stderr and "Traceback" not in r.stderr
    r = vaereg("info", tmp_path / "missing.tif", check=False)
    assert r.returncode == 2 and "missing.tif: file does not exist" in r.stderr
    np.save(tmp_path / "grey.npy", np.linspace(0, 1, 27).reshape(3, 3, 3))
    r = vaereg("info", tmp_path / "grey.npy", check=False)
    assert r.returncode == 2 and "threshold" in r.stderr and "Traceback" not in r.stderr
    assert "0.5185" in vaereg("info", tmp_path / "grey.npy", "--threshold", 0.49).stdout
    r = vaereg("generate", "--sigma", 3, 1, 1, "-o", tmp_path / "x.npy", check=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr


@pytest.mark.parametrize("flag", ["--filter", "--sigma"])
def test_filter_by_index_or_sigma_agree(tmp_path, flag):
    value = [48] if flag == "--filter" else [8, 1, 1]
    vaereg("generate", flag, *value, "--size", 11, "-o", tmp_path / "a.npy")
    assert json.loads(vaereg("info", tmp_path / "a.npy", "--json").stdout)["metadata"]["filter_index"] == 48
