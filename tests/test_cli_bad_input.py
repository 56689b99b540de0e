"""Bad command-line input: every command answers with one line naming the problem, exit status 2, no traceback.

Run in-process through :func:`vaereg_core.cli.main` (fast); a case that needs
a real model or files uses the fixtures below. ``{dir}`` in an argument is
the test's temporary folder.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vaereg_core.cli import main

LATENT = "0,0,0,0"  # the tiny model's latent size is 4

# (argv, text the one line must contain: the option or the file it is about)
CASES = [
    # generate
    (["generate", "--size", "0", "-o", "{dir}/g.npy"], "--size"),
    (["generate", "--size", "1", "-o", "{dir}/g.npy"], "--size"),
    (["generate", "--size", "-3", "-o", "{dir}/g.npy"], "--size"),
    (["generate", "--size", "abc", "-o", "{dir}/g.npy"], "--size"),
    (["generate", "--size", "100000", "-o", "{dir}/g.npy"], "--max-memory"),
    (["generate", "--vf", "nan", "-o", "{dir}/g.npy"], "--volume-fraction"),
    (["generate", "--vf", "1.5", "-o", "{dir}/g.npy"], "--volume-fraction"),
    (["generate", "--sigma", "3", "1", "1", "-o", "{dir}/g.npy"], "--sigma"),
    (["generate", "--filter", "64", "-o", "{dir}/g.npy"], "--filter"),
    (["generate", "--seed", "-1", "-o", "{dir}/g.npy"], "--seed"),
    (["generate", "--field", "-1", "-o", "{dir}/g.npy"], "--field"),
    (["generate", "--max-memory", "0", "-o", "{dir}/g.npy"], "--max-memory"),
    (["generate", "-o", "{dir}/file/g.npy"], "--output"),
    (["generate", "-o", "{dir}"], "--output"),
    # info, convert
    (["info", "--threshold", "nan", "{dir}/a.npy"], "--threshold"),
    (["info", "--threshold", "inf", "{dir}/a.npy"], "--threshold"),
    (["info", "--index", "0", "{dir}/a.npy"], "--index"),
    (["info", "{dir}/missing.npy"], "missing.npy"),
    (["convert", "{dir}/a.npy", "{dir}/file/b.npy"], "output"),
    (["convert", "--index", "1", "{dir}/a.npy", "{dir}/b.npy"], "--index"),
    # homogenize
    (["homogenize", "{dir}/a.npy", "--tol", "0"], "--tol"),
    (["homogenize", "{dir}/a.npy", "--tol=-1e-5"], "--tol"),
    (["homogenize", "{dir}/a.npy", "--tol", "nan"], "--tol"),
    (["homogenize", "{dir}/a.npy", "--tol", "1"], "--tol"),
    (["homogenize", "{dir}/a.npy", "--max-iter", "0"], "--max-iter"),
    (["homogenize", "{dir}/a.npy", "--device", "gpu"], "--device"),
    (["homogenize", "{dir}/a.npy", "--device", "cuda:99"], "--device"),
    (["homogenize", "{dir}/a.npy", "--hard", "-1", "0.3"], "--hard"),
    (["homogenize", "{dir}/a.npy", "--hard", "nan", "0.3"], "--hard"),
    (["homogenize", "{dir}/a.npy", "--soft", "2.4", "0.7"], "--soft"),
    (["homogenize", "{dir}/a.npy", "--max-memory", "1e-6"], "--max-memory"),
    (["homogenize", "{dir}/a.npy", "--max-memory", "-1"], "--max-memory"),
    (["homogenize", "{dir}/a.npy", "--index", "0"], "--index"),
    # dataset
    (["dataset", "build", "--out", "{dir}/d.h5", "--limit", "-1"], "--limit"),
    (["dataset", "build", "--out", "{dir}/d.h5", "--fields", "-1"], "--fields"),
    (["dataset", "build", "--out", "{dir}/d.h5", "--fields", "0"], "--fields"),
    (["dataset", "build", "--out", "{dir}/d.h5", "--workers", "0"], "--workers"),
    (["dataset", "build", "--out", "{dir}/d.h5", "--workers", "100000"], "--workers"),  # a LocalCluster of 100,000 processes
    (["dataset", "build", "--out", "{dir}/d.h5", "--scheduler", "notanaddress"], "--scheduler"),
    (["dataset", "build", "--out", "{dir}/d.h5", "--scheduler", "http://127.0.0.1:8786"], "--scheduler"),
    (["dataset", "build", "--out", "{dir}/d.h5", "--hard", "410"], "--hard"),
    (["dataset", "build", "--out", "{dir}/d.h5", "--size", "1"], "--size"),
    (["dataset", "build", "--out", "{dir}/d.h5", "--tol", "0"], "--tol"),
    (["dataset", "build", "--out", "{dir}/d.h5", "--device", "tpu"], "--device"),
    (["dataset", "build", "--out", "{dir}/file/d.h5"], "--out"),
    (["dataset", "build", "--out", "{dir}"], "--out"),
    (["dataset", "materialize", "--data", "{dir}/missing.h5", "--out", "{dir}/c.h5"], "--data"),
    (["dataset", "materialize", "--data", "{dir}/file", "--out", "{dir}/c.h5", "--workers", "0"], "--workers"),
    (["dataset", "report", "{dir}/missing.h5"], "missing.h5"),
    (["dataset", "report", "{dir}/file", "--out", "{dir}/file"], "--out"),
    # train, evaluate, pack, predict, vgg19
    (["train", "--config", "tiny", "--data", "{dir}/missing.h5", "--out", "{dir}/run"], "--data"),
    (["train", "--config", "tiny", "--data", "{dir}/file", "--out", "{dir}/run", "--epochs", "0"], "--epochs"),
    (["train", "--config", "tiny", "--data", "{dir}/file", "--out", "{dir}/run", "--time-limit", "-1"], "--time-limit"),
    (["train", "--config", "tiny", "--data", "{dir}/file", "--out", "{dir}/run", "--time-limit", "nan"], "--time-limit"),
    (["train", "--config", "tiny", "--data", "{dir}/file", "--out", "{dir}/run", "--device", "npu"], "--device"),
    (["train", "--config", "tiny", "--data", "{dir}/file", "--out", "{dir}/file"], "--out"),
    (["train", "--config", "{dir}/list.json", "--data", "{dir}/file", "--out", "{dir}/run"], "JSON object"),
    (["train", "--config", "{dir}/bad-section.json", "--data", "{dir}/file", "--out", "{dir}/run"], "JSON object"),
    (["evaluate", "{dir}/missing-run"], "missing-run"),
    (["pack", "{dir}", "--out", "{dir}/p.pt", "--note", "nokey"], "--note"),
    (["pack", "{dir}", "--out", "{dir}/p.pt", "--note", "=value"], "--note"),
    (["predict", "{dir}/a.npy", "--model", "{dir}/missing.pt"], "--model"),
    (["predict", "{dir}/a.npy", "--model", "{dir}/tiny.pt", "--device", "cuda:99"], "--device"),
    (["vgg19", "convert", "{dir}/missing.pkl"], "missing.pkl"),
    # inverse
    (["inverse", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/file"], "--out"),
    (["inverse", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/o", "--samples", "-1"], "--samples"),
    (["inverse", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/o", "--device", "gpu"], "--device"),
    (["inverse", "--model", "{dir}/tiny.pt", "--target", "C11=abc", "--out", "{dir}/o"], "C11"),
    (["inverse", "--model", "{dir}/tiny.pt", "--target", "C11=nan", "--out", "{dir}/o"], "C11"),
    (["inverse", "--model", "{dir}/missing.pt", "--target", "C11=40", "--out", "{dir}/o"], "--model"),
    # refine
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", "{dir}/missing.json"], "--start"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", "{dir}/no-key.json"], "--start"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", "{dir}/list.json"], "--start"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", "{dir}/broken.json"], "--start"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", "{dir}/nan.json"], "--start"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", "{dir}/no-latent.json"], "--start"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", "{dir}/cands.json#k9"], "k9"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", "nan,nan,nan,nan"], "--start"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", "1,2"], "--start"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", LATENT, "--temperature", "inf"], "--temperature"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", LATENT, "--temperature", "0"], "--temperature"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", LATENT, "--step", "inf"], "--step"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", LATENT, "--prior-weight", "nan"], "--prior-weight"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", LATENT, "--prior-weight", "-1"], "--prior-weight"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", LATENT, "--iterations", "0"], "--iterations"),
    (["refine", "--model", "{dir}/tiny.pt", "--target", "C11=40", "--out", "{dir}/r", "--start", LATENT, "--forward", "{dir}/missing.pt"], "--forward"),
    # evaluation commands
    (["evaluate-inverse", "--model", "{dir}/tiny.pt", "--data", "{dir}/file", "--out", "{dir}/e", "--experiments", "xyz"], "--experiments"),
    (["evaluate-inverse", "--model", "{dir}/tiny.pt", "--data", "{dir}/file", "--out", "{dir}/e", "--iterations", "0"], "--iterations"),
    (["evaluate-inverse", "--model", "{dir}/tiny.pt", "--data", "{dir}/file", "--out", "{dir}/e", "--c11", "-5"], "--c11"),
    (["evaluate-inverse", "--model", "{dir}/tiny.pt", "--data", "{dir}/file", "--out", "{dir}/e", "--random-starts", "-1"], "--random-starts"),
    (["evaluate-components", "--model", "{dir}/tiny.pt", "--data", "{dir}/file", "--out", "{dir}/e", "--components", "0"], "--components"),
    (["evaluate-components", "--model", "{dir}/tiny.pt", "--data", "{dir}/file", "--out", "{dir}/e", "--seeds", "0"], "--seeds"),
    (["refit-prior", "--model", "{dir}/tiny.pt", "--data", "{dir}/file", "--out", "{dir}/m.pt", "--components", "0"], "--components"),
    (["refit-prior", "--model", "{dir}/tiny.pt", "--data", "{dir}/file", "--out", "{dir}/m.pt", "--components", "1", "--steps", "0"], "--steps"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A 9^3 structure, a plain file, the tiny model and candidates files good and bad."""
    from inverse_helpers import save_tiny_model
    from vaereg_core.microstructure import generate

    d = tmp_path_factory.mktemp("bad-input")
    np.save(d / "a.npy", generate(seed=0, field_index=0, filter_index=0, volume_fraction=0.5, size=9))
    (d / "file").write_text("not a folder")
    save_tiny_model(d / "tiny.pt")
    good = {"label": "k1", "latent": [0.0, 0.0, 0.0, 0.0]}
    (d / "cands.json").write_text(json.dumps({"candidates": [good]}))
    (d / "no-key.json").write_text(json.dumps({"target_GPa": {"C11": 40}}))
    (d / "list.json").write_text(json.dumps([good]))
    (d / "broken.json").write_text('{"candidates": [')
    (d / "nan.json").write_text('{"candidates": [{"label": "k1", "latent": [NaN, NaN, NaN, NaN]}]}')
    (d / "no-latent.json").write_text(json.dumps({"candidates": [{"label": "k1"}]}))
    (d / "bad-section.json").write_text(json.dumps({"base": "tiny", "train": 3}))
    return d


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``vaereg ARGV`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, expected: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert expected in lines[0] and "error:" in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[" ".join(a[:1] + [x for x in a[1:] if x.startswith("--")][:2]) for a, _ in CASES])
def test_bad_input_is_one_line_naming_it(argv, expected, folder, capsys):
    code, _, err = run([a.replace("{dir}", str(folder)) for a in argv], capsys)
    assert_one_line_error(code, err, expected)


def test_unavailable_cuda_is_refused_by_every_command(folder, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    for argv in (
        ["homogenize", f"{folder}/a.npy", "--device", "cuda"],
        ["predict", f"{folder}/a.npy", "--device", "cuda"],  # also without --model
        ["dataset", "build", "--out", f"{folder}/d.h5", "--device", "cuda"],
        ["inverse", "--target", "C11=40", "--out", f"{folder}/o", "--device", "cuda"],
    ):
        code, _, err = run(argv, capsys)
        assert_one_line_error(code, err, "no CUDA GPU")


def test_predict_without_model_loads_the_default_on_the_chosen_device(folder, capsys, monkeypatch):
    import vaereg_core.model.inference as inference
    import vaereg_core.resources as resources

    calls = []

    def fake_load(path, device="auto", **kwargs):
        calls.append((str(path), device))
        raise inference.ModelFileError(path, "stop here")

    monkeypatch.setattr(resources, "default_model_path", lambda: folder / "tiny.pt")
    monkeypatch.setattr(inference, "load_model", fake_load)
    code, _, err = run(["predict", f"{folder}/a.npy", "--device", "cpu"], capsys)
    assert code == 2 and calls == [(str(folder / "tiny.pt"), "cpu")], err
    monkeypatch.setattr(resources, "default_model_path", lambda: folder / "none.pt")
    code, _, err = run(["predict", f"{folder}/a.npy", "--device", "cpu"], capsys)
    assert_one_line_error(code, err, "no bundled default model")


def test_unwritable_out_folder_is_refused(folder, capsys, monkeypatch):
    import vaereg_core.cli.arguments as arguments

    # Root ignores permission bits, so the write probe itself is made to fail.
    monkeypatch.setattr(arguments, "_can_create_in", lambda path: False)
    for argv, option in (
        (["inverse", "--model", f"{folder}/tiny.pt", "--target", "C11=40", "--out", f"{folder}/ro"], "--out"),
        (["dataset", "build", "--out", f"{folder}/ro/d.h5"], "--out"),
        (["generate", "-o", f"{folder}/g.npy"], "--output"),
    ):
        code, _, err = run(argv, capsys)
        assert_one_line_error(code, err, option)
        assert "not writable" in err


def test_read_only_folder_is_refused_for_real(tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = run(["dataset", "build", "--out", str(ro / "d.h5")], capsys)
    finally:
        ro.chmod(0o700)
    assert_one_line_error(code, err, "not writable")


def test_refine_below_the_end_temperature_holds_it_and_says_so(folder, capsys):
    code, out, err = run(
        ["refine", "--model", f"{folder}/tiny.pt", "--target", "C11=40", "--out", f"{folder}/r-cold", "--start", f"{folder}/cands.json#k1",
         "--temperature", "1e-4", "--step", "0.01", "--iterations", "3", "--no-validate", "--json"],
        capsys,
    )
    assert code == 0, err
    notes = [line for line in err.splitlines() if "note:" in line]
    assert len(notes) == 2 and "--temperature 0.0001" in notes[0] and "--step 0.01" in notes[1]
    assert json.loads(out)["iterations_done"] == 3


def test_internal_errors_are_one_line_and_exit_1(folder, capsys, monkeypatch):
    import vaereg_core.cli.voxels as voxels

    monkeypatch.delenv("VAEREG_TRACEBACK", raising=False)
    monkeypatch.setattr(voxels, "read_voxel_file", lambda *a, **k: {}["bug"])
    code, _, err = run(["info", f"{folder}/a.npy"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "internal error: KeyError" in err and "please report" in err and "Traceback" not in err


def test_os_errors_are_one_line_and_exit_2(folder, capsys, monkeypatch):
    import vaereg_core.cli.voxels as voxels

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", "g.npy")

    monkeypatch.setattr(voxels, "write_voxels", full_disk)
    code, _, err = run(["generate", "--size", "9", "-o", f"{folder}/g.npy"], capsys)
    assert_one_line_error(code, err, "g.npy: No space left on device")


def test_errors_name_the_sub_command(folder, capsys):
    code, _, err = run(["dataset", "report", f"{folder}/file", "--out", f"{folder}/rep"], capsys)
    assert_one_line_error(code, err, "file")
    assert err.startswith("vaereg dataset report: error:")


def test_anneal_settings_refuse_infinite_schedules():
    from vaereg_core.inverse.annealing import AnnealSettings

    for bad in ({"start_temperature": float("inf")}, {"end_temperature": float("nan")}, {"start_step": float("inf")}):
        with pytest.raises(ValueError, match="finite"):
            AnnealSettings(**bad)
