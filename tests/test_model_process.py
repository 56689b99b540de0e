"""The app's model in its own process: loading, calls with progress, cancels, failures, and the child's end."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("vaereg_core.model.inference")
from inverse_helpers import save_tiny_model  # noqa: E402

from vaereg_core.errors import Cancelled, ModelFileError, VaeRegError  # noqa: E402
from vaereg_studio import model_process  # noqa: E402
from vaereg_studio.model_process import ModelProcess  # noqa: E402


def counting(model, report, cancel, n: int, pause_s: float) -> int:
    """A call that reports 0 … n-1 and stops when cancelled (module-level: the child imports it)."""
    for i in range(n):
        if cancel():
            raise Cancelled(f"stopped at {i}")
        report(i)
        time.sleep(pause_s)
    return n


def failing(model, report, cancel) -> None:
    raise ValueError("no such structure")


def unpicklable(model, report, cancel):
    return threading.Lock()


def exiting(model, report, cancel) -> None:
    import os

    os._exit(3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt", components=2)


@pytest.fixture
def process(tiny):
    p = ModelProcess(tiny, "cpu")
    yield p
    p.close()


def test_the_child_answers_as_the_model_in_this_process_does(process, tiny):
    from vaereg_core.model.inference import load_model

    info = process.wait_ready()
    here = load_model(tiny, "cpu")
    assert info.property_names == tuple(here.property_names) and info.checksum == here.file.checksum
    assert info.grid == here.grid and info.latent_dim == here.latent_dim and info.is_generative and info.material == here.material
    assert info.description.startswith("tiny.pt (tiny, ") and info.forward_description == here.describe_forward()
    z = np.random.default_rng(1).normal(size=(3, info.latent_dim))
    voxels = process.call(model_process.decode, z)
    np.testing.assert_array_equal(voxels, here.decode(z, binary=True))
    mean, std = process.call(model_process.predict, voxels)
    expected = here.predict(voxels)
    np.testing.assert_allclose(mean, expected[0], rtol=1e-5)
    np.testing.assert_allclose(std, expected[1], rtol=1e-5)


def test_progress_comes_to_the_caller_and_calls_run_side_by_side(process):
    process.wait_ready()
    seen: list[int] = []
    results: list[int] = []
    other = threading.Thread(target=lambda: results.append(process.call(counting, 5, 0.2)))
    t = time.monotonic()
    other.start()
    assert process.call(counting, 5, 0.2, progress=seen.append) == 5
    other.join()
    assert seen == [0, 1, 2, 3, 4] and results == [5]
    assert time.monotonic() - t < 1.8  # two 1 s calls at once, not one after the other


def test_a_cancel_returns_at_once_and_stops_the_work_in_the_child(process):
    process.wait_ready()
    stop = threading.Event()
    seen: list[int] = []
    threading.Timer(0.3, stop.set).start()
    t = time.monotonic()
    with pytest.raises(Cancelled):
        process.call(counting, 1000, 0.05, progress=seen.append, cancel=stop.is_set)
    assert time.monotonic() - t < 1.0
    time.sleep(0.3)
    assert len(seen) < 20  # the child stopped too (its reports stopped coming)
    assert process.call(counting, 2, 0.0) == 2  # and it still serves


def test_failures_come_back_as_one_line_and_the_child_keeps_serving(process):
    process.wait_ready()
    with pytest.raises(VaeRegError, match="ValueError: no such structure"):
        process.call(failing)
    with pytest.raises(VaeRegError, match="could not send its answer"):
        process.call(unpicklable)
    assert process.call(counting, 1, 0.0) == 1


def test_a_child_that_dies_fails_the_waiting_calls_with_a_message(process):
    process.wait_ready()
    with pytest.raises(VaeRegError, match="exit code 3"):
        process.call(exiting)
    with pytest.raises(VaeRegError, match="model process"):
        process.call(counting, 1, 0.0)


def test_a_file_that_cannot_be_loaded_says_why(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model")
    p = ModelProcess(bad, "cpu")
    try:
        with pytest.raises(ModelFileError, match="broken.pt"):
            p.wait_ready()
    finally:
        p.close()


def test_closing_ends_the_child(tiny):
    p = ModelProcess(tiny, "cpu")
    p.wait_ready()
    p.close()
    deadline = time.monotonic() + 5
    while p.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not p.alive


def test_a_cancel_can_wait_for_the_partial_answer(process):
    """Annealing's way: the child is told to stop and its own answer (here, how far it got) comes back."""
    process.wait_ready()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(Cancelled, match="stopped at"):  # counting raises Cancelled itself: that is its answer
        process.call(counting, 1000, 0.05, cancel=stop.is_set, keep_partial=True)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    assert process.call(partial_count, 1000, 0.05, cancel=stop.is_set, keep_partial=True) < 20


def partial_count(model, report, cancel, n: int, pause_s: float) -> int:
    """Counts until cancelled, then returns how far it got."""
    for i in range(n):
        if cancel():
            return i
        time.sleep(pause_s)
    return n


def test_the_child_runs_below_the_ui_s_priority_once_loaded(process):
    """Its torch threads take every core; the window's process is served first."""
    import os

    process.wait_ready()
    tids = process.call(thread_priorities)
    assert tids and all(nice == os.getpriority(os.PRIO_PROCESS, 0) + model_process.CHILD_NICENESS for nice in tids)


def thread_priorities(model, report, cancel) -> list[int]:
    """The nice value of each thread of the child (Linux), this call's own among them."""
    import os

    return [os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in os.listdir("/proc/self/task")]
