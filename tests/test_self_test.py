"""``vaereg-studio --self-test`` from the source install, in a subprocess as a user runs it.

A tiny random model (19³) stands in for the bundled one, so these tests do
not depend on a trained model; its figures are meaningless, the steps are not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inverse_helpers import save_tiny_model

pytestmark = pytest.mark.gui  # the self-test opens the main window (Xvfb display from pytest-xvfb)

STEPS = ["model", "generate", "predict", "model-process", "candidates", "anneal", "physics", "render", "window"]


def self_test(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``vaereg-studio --self-test ARGS`` (the installed command, else ``python -m vaereg_studio``)."""
    script = Path(sys.executable).with_name("vaereg-studio")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "vaereg_studio"]
    return subprocess.run(
        [*command, "--self-test", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def assert_no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


@pytest.mark.slow
def test_self_test_passes_with_a_tiny_model(tmp_path):
    model = save_tiny_model(tmp_path / "tiny.pt")
    result = self_test("--model", str(model))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_traceback(result)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("VAEReg Studio") and "source install" in lines[0]
    step_lines = [line for line in lines if line.startswith(("ok ", "FAIL"))]
    assert [line.split()[1] for line in step_lines] == STEPS
    for line in step_lines:
        assert line.endswith(" ms") and line.split()[-2].isdigit(), line
    assert "tiny.pt: 19³ grid, 6 properties, K = 3" in step_lines[0]
    assert "16³ in a child process" in step_lines[STEPS.index("physics")]
    assert lines[-1].startswith(f"self-test passed: {len(STEPS)} steps in ")


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_a_bad_model_fails_with_one_clear_line(tmp_path, kind):
    path = tmp_path / "model.pt"
    if kind == "corrupt":
        path.write_bytes(b"this is not a model file\n" * 10)
    result = self_test("--model", str(path))
    assert result.returncode == 1
    assert_no_traceback(result)
    fail = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    expected = "no such model file" if kind == "missing" else "not a VAEReg Studio model file, or truncated"
    assert len(fail) == 1 and fail[0].startswith(f"FAIL model: {path}: {expected}"), result.stdout
    assert result.stdout.splitlines()[-1] == "self-test FAILED at step 1 of 9 (model)"


def test_no_bundled_model_names_the_path(tmp_path):
    result = self_test(env={"VAEREG_RESOURCES": str(tmp_path)})
    assert result.returncode == 1
    assert_no_traceback(result)
    expected = f"FAIL model: no bundled model at {tmp_path / 'models' / 'default.pt'}; pass --model FILE"
    assert any(line.startswith(expected) for line in result.stdout.splitlines()), result.stdout
