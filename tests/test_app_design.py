"""Inverse design in the app (issue 4): target panel, candidates, validation, latent explorer, annealing.

A real window under Xvfb with the tiny random model (19³, 4-d latent, K = 3) and
the synthetic 19³ dataset as the "shipped" resources, so nothing depends on the
real model; physics runs on 19³ grids (well under a second per structure).
Random weights make no physical sense: these tests check the app's mechanics.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from app_helpers import TIMEOUT_MS, corners, open_window, private_settings, rgb, save_artifact, share_of_hue, synthetic_resources
from PySide6.QtCore import Qt

from vaereg_core import voxel_io

pytest.importorskip("vaereg_core.model.inference")
from inverse_helpers import save_tiny_model  # noqa: E402

import vaereg_studio.design_state  # noqa: E402
from vaereg_studio import model_process  # noqa: E402

pytestmark = pytest.mark.gui
MAP_STRUCTURES = 48


@pytest.fixture
def resources(tmp_path, monkeypatch) -> Path:
    return synthetic_resources(tmp_path / "resources", monkeypatch)


@pytest.fixture
def model_path(tmp_path) -> Path:
    (tmp_path / "models").mkdir()
    return save_tiny_model(tmp_path / "models" / "tiny.pt", components=3)


def load_model(qtbot, window, path: Path, wait_map: bool = True) -> None:
    """Open the model and wait for it (and for the latent map)."""
    window.session.map_structures = MAP_STRUCTURES
    signals = [window.modelLoaded, window.latent_panel.mapReady] if wait_map else [window.modelLoaded]
    with qtbot.waitSignals(signals, timeout=TIMEOUT_MS):
        window.open_model(path)


def design_window(qtbot, tmp_path: Path, model_path: Path, wait_map: bool = True):
    window = open_window(qtbot, tmp_path)
    window.session.map_cache_dir = tmp_path / "cache"
    load_model(qtbot, window, model_path, wait_map)
    return window


def set_target(window, values: dict[str, float | None]) -> None:
    """Type a target into the panel (``None``: leave the property free)."""
    for row in window.target_panel.rows:
        if row.name in values:
            value = values[row.name]
            row.free.setChecked(value is None)
            if value is not None:
                row.spin.setValue(value)


def find(qtbot, window, samples: int = 0) -> list:
    window.target_panel.samples.setValue(samples)
    with qtbot.waitSignal(window.target_panel.candidatesShown, timeout=TIMEOUT_MS) as blocker:
        qtbot.mouseClick(window.target_panel.find_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def record_threads(monkeypatch, name: str) -> list[int]:
    """Wrap ``vaereg_studio.design_state.<name>`` to record the threads it runs on.

    The UI never freezes because the work runs off the UI thread; that is what
    the tests check (the event-loop latency it buys is measured in
    benchmarks/bench_app.py, not asserted here: timings depend on the machine).
    """
    threads: list[int] = []
    work = getattr(vaereg_studio.design_state, name)

    def recorded(*args, **kwargs):
        threads.append(threading.get_ident())
        return work(*args, **kwargs)

    monkeypatch.setattr(vaereg_studio.design_state, name, recorded)
    return threads


def test_panels_say_clearly_when_no_model_is_loaded(qtbot, tmp_path, resources):
    window = open_window(qtbot, tmp_path)
    for panel, message in ((window.target_panel, window.target_panel.message), (window.latent_panel, window.latent_panel.message)):
        assert message.isVisibleTo(panel) and "No model loaded" in message.text() and "Open Model" in message.text()
    assert not window.target_panel.target_box.isVisibleTo(window.target_panel)
    assert not window.latent_panel.body.isVisibleTo(window.latent_panel)


def test_find_validate_open_and_export_a_candidate(qtbot, tmp_path, resources, model_path, monkeypatch):
    window = design_window(qtbot, tmp_path, model_path)
    panel = window.target_panel
    assert [r.name for r in panel.rows] == ["C11", "C22", "C33", "C12", "C13", "C23"]
    assert all(r.free.isEnabled() for r in panel.rows)
    set_target(window, {"C11": 40.0, "C22": 40.0, "C33": 40.0, "C12": None, "C13": None, "C23": None})
    assert not panel.warning.isVisibleTo(panel)

    threads = record_threads(monkeypatch, "validate_in_process")
    results = []
    panel.validated.connect(lambda label, validation: results.append(label))
    started = time.perf_counter()
    found = find(qtbot, window, samples=1)
    print(f"find candidates (K = 3, 1 sample each, 19³) to all cards drawn: {1e3 * (time.perf_counter() - started):.0f} ms")
    assert [c.label for c in found] == ["k1", "k1-s1", "k2", "k2-s1", "k3", "k3-s1"]
    cards = panel.visible_cards()
    assert len(cards) == 6
    weights = [c.weight for c in found]
    assert weights == sorted(weights, reverse=True) and abs(sum(set(weights)) - 1) < 1e-5
    first = cards[0]
    assert f"{found[0].weight:.3f}" in first.title.text() and f"{found[0].volume_fraction:.3f}" in first.title.text()
    assert f"{found[0].predicted[0]:.1f} ± {found[0].predicted_std[0]:.1f}" in first.table.text()
    # Each card draws its candidate in its own view: background at the top corners, the hard phase's hue inside.
    image = first.view.image()
    for corner in corners(image)[:2]:
        assert np.abs(corner - rgb(window.viewer.options.background)).max() <= 2
    assert share_of_hue(image, window.viewer.options.hard_colour) > 0.1
    # Candidates are marked on the latent map and offered as annealing starts.
    assert len(window.latent_panel.map_view.candidate_marks.data) == 6
    assert window.latent_panel.start_combo.count() == 6

    # All six are validated in the background as soon as they are shown, each on a worker thread.
    qtbot.waitUntil(lambda: len(results) == 6, timeout=TIMEOUT_MS)
    assert sorted(results) == sorted(c.label for c in found)
    assert len(threads) == 6 and threading.main_thread().ident not in threads
    validation = first.validation
    achieved = validation.constants["C11"]
    assert f"{achieved:.1f}" in first.table.text()
    assert f"{100 * (achieved - 40.0) / 40.0:+.1f} %" in first.table.text()
    assert "free" in first.table.text()  # C12 was left free: no error to a target
    assert set(validation.relative_error) == {"C11", "C22", "C33"}

    panel.resize(620, 900)
    qtbot.wait(100)
    save_artifact(panel, "target_panel_candidates.png")

    # Clicking a card opens its candidate in the main viewer, with provenance.
    with qtbot.waitSignal(window.structureShown, timeout=TIMEOUT_MS):
        qtbot.mouseClick(first.title, Qt.MouseButton.LeftButton)
    structure = window.structure
    np.testing.assert_array_equal(structure.voxels, found[0].voxels)
    assert structure.name == "candidate k1"
    assert structure.metadata["target_GPa"] == {"C11": 40.0, "C22": 40.0, "C33": 40.0}
    assert structure.metadata["model"].startswith("tiny.pt (sha256 ")
    assert structure.metadata["latent"] == pytest.approx(found[0].z.tolist())
    assert structure.metadata["validation"]["constants_GPa"]["C11"] == pytest.approx(achieved)

    # Export round trip: the voxels and the provenance come back.
    out = tmp_path / "candidate.h5"
    with qtbot.waitSignal(window.exported, timeout=TIMEOUT_MS):
        window.export_structure(out)
    voxels, metadata = voxel_io.read_voxel_file(out)
    np.testing.assert_array_equal(voxels, found[0].voxels)
    assert metadata["label"] == "k1" and metadata["seed"] == 0
    assert metadata["model"] == structure.metadata["model"]
    assert metadata["latent"] == pytest.approx(found[0].z.tolist())


def test_cards_are_drawn_before_the_predictions_which_fill_them_in_before_any_validation(qtbot, tmp_path, resources, model_path, monkeypatch):
    import vaereg_studio.session.session as session_module

    window = design_window(qtbot, tmp_path, model_path)
    panel = window.target_panel
    release = threading.Event()
    predict = session_module.predict_found
    monkeypatch.setattr(session_module, "predict_found", lambda *args: release.wait(60) and predict(*args))
    validations = record_threads(monkeypatch, "validate_in_process")
    with qtbot.waitSignal(panel.candidatesDrawn, timeout=TIMEOUT_MS) as drawn:
        panel.find_button.click()
    cards = panel.visible_cards()
    assert len(cards) == len(drawn.args[0]) >= 2 and not any(c.is_predicted for c in drawn.args[0])
    assert all("…" in card.table.text() and "±" not in card.table.text() for card in cards)
    assert "predicted" not in json.dumps(cards[0].found.candidate.to_dict())  # an export now records no prediction
    qtbot.wait(300)
    assert not validations and all(e.status == "not validated" for e in window.session.candidates)
    assert not panel.find_button.isEnabled()  # the search is not over
    with qtbot.waitSignal(panel.candidatesShown, timeout=TIMEOUT_MS) as shown:
        release.set()
    assert shown.args[0] == drawn.args[0] and all(c.is_predicted for c in shown.args[0])
    for card, candidate in zip(cards, shown.args[0]):
        assert f"{candidate.predicted[0]:.1f} ± {candidate.predicted_std[0]:.1f}" in card.table.text() and "…" not in card.table.text()
    qtbot.waitUntil(lambda: all(e.status != "not validated" for e in window.session.candidates), timeout=TIMEOUT_MS)
    assert panel.find_button.isEnabled()


def test_bad_targets_say_why_and_extrapolation_is_flagged(qtbot, tmp_path, resources, model_path, monkeypatch):
    window = design_window(qtbot, tmp_path, model_path, wait_map=False)
    panel = window.target_panel
    set_target(window, {n: None for n in ("C11", "C22", "C33", "C12", "C13", "C23")})
    assert panel.problem.isVisibleTo(panel) and "no target given" in panel.problem.text()
    assert not panel.find_button.isEnabled()

    set_target(window, {"C11": 500.0})
    assert all(r.spin.isVisibleTo(panel) and r.free.isVisibleTo(panel) for r in panel.rows)
    assert not panel.problem.isVisibleTo(panel) and panel.find_button.isEnabled()
    assert panel.warning.isVisibleTo(panel)
    assert "Extrapolation" in panel.warning.text() and "C11 = 500 GPa" in panel.warning.text() and "5.0–100.0" in panel.warning.text()
    save_artifact(panel, "target_panel_extrapolation.png")

    # A failure in the worker is a dialog, not a traceback, and the panel keeps working.
    def broken(*args, **kwargs):
        raise RuntimeError("the generator exploded")

    monkeypatch.setattr("vaereg_studio.session.session.find_candidates", broken)
    with qtbot.waitSignal(window.errorShown, timeout=TIMEOUT_MS) as blocker:
        panel.find_button.click()
    title, message = blocker.args
    assert title == "Cannot find candidates." and "the generator exploded" in message and "Traceback" not in message
    assert panel.find_button.isEnabled()


def test_without_training_data_free_is_disabled_and_the_map_says_why(qtbot, tmp_path, model_path, monkeypatch):
    monkeypatch.setenv("VAEREG_RESOURCES", str(tmp_path / "empty-resources"))
    window = open_window(qtbot, tmp_path)
    window.session.map_cache_dir = tmp_path / "cache"
    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT_MS):
        window.open_model(model_path)
    panel = window.target_panel
    for row in panel.rows:
        assert not row.free.isEnabled() and "No training property table" in row.free.toolTip()
    assert panel.free_note.isVisibleTo(panel) and "middle of each range" in panel.free_note.text()
    qtbot.waitUntil(lambda: "No latent map" in window.latent_panel.message.text(), timeout=TIMEOUT_MS)
    assert "dataset file does not exist" in window.latent_panel.message.text()
    # Candidates and annealing from them still work without the map.
    set_target(window, {"C11": 30.0, "C22": 30.0, "C33": 30.0, "C12": 10.0, "C13": 10.0, "C23": 10.0})
    find(qtbot, window)
    window.latent_panel.iterations.setValue(3)
    with qtbot.waitSignal(window.latent_panel.runFinished, timeout=TIMEOUT_MS) as blocker:
        window.latent_panel.start_run()
    assert blocker.args[0].row.status_text == "done"


def test_default_target_is_a_real_test_structure(qtbot, tmp_path, resources, model_path):
    from vaereg_core.dataset.table import read_table
    from vaereg_core.inverse.feasibility import default_target

    window = design_window(qtbot, tmp_path, model_path, wait_map=False)
    expected = default_target(read_table(resources / "dataset" / "elastic.h5"))
    for row in window.target_panel.rows:
        assert row.spin.value() == pytest.approx(expected[row.name], abs=0.05) and not row.free.isChecked()  # 0.1 GPa steps
    assert not window.target_panel.free_note.isVisibleTo(window.target_panel)


def test_latent_map_is_cached_beside_the_model_or_in_the_cache_folder(qtbot, tmp_path, resources, model_path, monkeypatch):
    window = design_window(qtbot, tmp_path, model_path)
    cache = model_path.with_name("tiny.latents.npz")
    assert cache.is_file() and window.latent_panel.map_path == cache
    assert "computed now" in window.latent_panel.message.text()
    assert len(window.latent_panel.map.coordinates) == MAP_STRUCTURES
    first = window.latent_panel.map.coordinates.copy()

    load_model(qtbot, window, model_path)
    assert "from tiny.latents.npz" in window.latent_panel.message.text()
    np.testing.assert_allclose(window.latent_panel.map.coordinates, first, atol=1e-5)

    # A model in a folder the app cannot write to keeps its map in the cache folder (computed as the model's process does).
    from vaereg_core.model.inference import load_model as load

    cache.unlink()
    monkeypatch.setattr("vaereg_studio.model_process.os.access", lambda path, mode: Path(path) != model_path.parent)
    found, where = model_process.compute_map(load(model_path, "cpu"), lambda report: None, lambda: False, model_path, tmp_path / "cache", MAP_STRUCTURES)
    assert not cache.exists()
    assert where.parent == tmp_path / "cache" and where.is_file() and len(found.coordinates) == MAP_STRUCTURES
    assert model_process.latent_cache_paths(model_path, tmp_path / "cache")[1] == where  # where the app looks next


def test_a_stored_latent_map_belongs_to_the_weights_that_made_it(tmp_path, model_path):
    """A map beside a model file is used only with the model whose checksum it records, whatever the file times."""
    from vaereg_core.inverse.latent_map import LatentMap
    from vaereg_core.model.inference import load_model as load
    from vaereg_studio.design_state import load_cached_map
    from vaereg_studio.model_process import ModelInfo

    model = load(model_path, "cpu")
    info = ModelInfo.of(model, model_path)
    z = np.random.default_rng(0).normal(size=(20, model.latent_dim))
    properties = np.full((20, len(model.property_names)), 30.0)
    stale = LatentMap.fit(z, properties, model.property_names, "another model's weights")
    stale.save(model_path.with_name("tiny.latents.npz"))
    assert load_cached_map(info, model_path, tmp_path / "cache") is None
    LatentMap.fit(z, properties, model.property_names, model.file.checksum).save(model_path.with_name("tiny.latents.npz"))
    found, where = load_cached_map(info, model_path, tmp_path / "cache")
    assert where == model_path.with_name("tiny.latents.npz") and found.model_checksum == model.file.checksum


def test_click_on_the_map_decodes_that_point(qtbot, tmp_path, resources, model_path):
    window = design_window(qtbot, tmp_path, model_path)
    latent = window.latent_panel
    window.docks["latent"].raise_()
    qtbot.wait(100)
    x, y = latent.map.coordinates[5]
    with qtbot.waitSignals([latent.pointDecoded, window.structureShown], timeout=TIMEOUT_MS):
        qtbot.mouseClick(latent.map_view.viewport(), Qt.MouseButton.LeftButton, pos=latent.view_to_widget(x, y))
    model = window.model
    clicked_point, z = latent.clicked
    assert np.allclose(clicked_point, (x, y), atol=0.05 * np.ptp(latent.map.coordinates, axis=0).max())
    np.testing.assert_array_equal(window.structure.voxels, model.call(model_process.decode, latent.map.lift(clicked_point)))
    assert window.structure.metadata["origin"] == "latent map point"
    assert latent.start_combo.currentText().startswith("clicked point")


def test_annealing_runs_side_by_side_on_workers_and_cancel_fast(qtbot, tmp_path, resources, model_path, monkeypatch):
    window = design_window(qtbot, tmp_path, model_path)
    set_target(window, {"C11": 30.0, "C22": 30.0, "C33": 30.0, "C12": 10.0, "C13": 10.0, "C23": 10.0})
    find(qtbot, window)
    latent = window.latent_panel
    window.docks["latent"].raise_()

    # Two runs side by side, from two candidates, each on its own worker thread.
    threads: list[int] = []  # the threads that wait for the model process's annealing
    call = model_process.ModelProcess.call

    def recorded(self, function, *args, **kwargs):
        if function is model_process.anneal:
            threads.append(threading.get_ident())
        return call(self, function, *args, **kwargs)

    monkeypatch.setattr(model_process.ModelProcess, "call", recorded)
    latent.iterations.setValue(25)
    latent.start_combo.setCurrentIndex(0)
    first = latent.start_run()
    latent.start_combo.setCurrentIndex(1)
    latent.seed.setValue(1)
    second = latent.start_run()
    qtbot.waitUntil(lambda: first.finished and second.finished, timeout=TIMEOUT_MS)
    assert len(set(threads)) == 2 and threading.main_thread().ident not in threads
    for run in (first, second):
        a = run.outcome.refinement.anneal
        assert run.row.status_text == "done" and a.iterations_done == 25 and not a.cancelled
        assert run.outcome.validation is not None and "physics: mean |error|" in run.row.status.text()
        # The whole accepted trajectory is drawn, with far fewer UI updates than iterations.
        assert len(run.points) == len(a.trajectory)
        elapsed = max(time.perf_counter() - run.started, 0.05)
        assert run.ui_updates <= elapsed * 10 + 2
    assert first.colour != second.colour
    # The best state of the last run to finish is in the viewer, with its provenance.
    qtbot.waitUntil(lambda: window.structure is not None and window.structure.name.endswith("best"), timeout=TIMEOUT_MS)
    assert window.structure.metadata["origin"] == "inverse design (latent annealing)"
    assert window.structure.metadata["validation"] is not None

    # A long run is cancelled within 0.5 s.
    latent.iterations.setValue(5000)
    run = latent.start_run()
    qtbot.waitUntil(lambda: run.row.bar.value() >= 3, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(latent.runFinished, timeout=TIMEOUT_MS):
        started = time.perf_counter()
        qtbot.mouseClick(run.row.cancel_button, Qt.MouseButton.LeftButton)
    stopped = time.perf_counter() - started
    print(f"annealing cancel -> run finished: {1e3 * stopped:.0f} ms")
    assert stopped < 0.5
    assert run.row.status_text == "cancelled" and run.outcome.refinement.anneal.cancelled
    assert run.outcome.refinement.anneal.iterations_done < 5000 and run.row.show_button.isEnabled()
    with qtbot.waitSignal(window.structureShown, timeout=TIMEOUT_MS):
        run.row.show_button.click()
    assert window.structure.name == f"run {run.number} best" and window.structure.metadata["cancelled"] is True

    qtbot.wait(200)
    save_artifact(window, "app_window_design.png")
    latent.resize(620, 900)
    qtbot.wait(200)
    save_artifact(latent, "latent_explorer_runs.png")


def test_validation_can_be_cancelled(qtbot, tmp_path, resources, model_path, monkeypatch):
    window = design_window(qtbot, tmp_path, model_path, wait_map=False)
    # A stand-in solve that runs until cancelled (the real child process is tested below).
    from vaereg_core.inverse.annealing import Cancelled

    def endless(voxels, target, cancel):
        while not cancel():
            time.sleep(0.01)
        raise Cancelled("validation cancelled")

    monkeypatch.setattr("vaereg_studio.design_state.validate_in_process", endless)
    find(qtbot, window)  # starts validating every card in the background
    card = window.target_panel.visible_cards()[0]
    assert card.validate_button.text() == "Cancel"
    with qtbot.waitSignal(window.target_panel.validated, timeout=TIMEOUT_MS) as blocker:
        started = time.perf_counter()
        card.validate_button.click()
    assert time.perf_counter() - started < 0.5
    assert blocker.args[1] is None and "validation cancelled" in card.table.text()
    assert card.validate_button.text() == "Validate"


def test_design_settings_persist_across_restart(qtbot, tmp_path, resources, model_path):
    window = design_window(qtbot, tmp_path, model_path, wait_map=False)
    set_target(window, {"C11": 42.5, "C22": None})
    window.target_panel.samples.setValue(2)
    window.target_panel.seed.setValue(7)
    latent = window.latent_panel
    latent.iterations.setValue(321)
    latent.temperature.setValue(0.02)
    latent.prior_weight.setValue(0.5)
    window.close()

    from vaereg_studio.main_window import MainWindow

    again = MainWindow(private_settings(tmp_path), load_default_model=False)
    qtbot.addWidget(again)
    again.session.map_cache_dir = tmp_path / "cache"
    load_model(qtbot, again, model_path, wait_map=False)
    rows = {r.name: r for r in again.target_panel.rows}
    assert rows["C11"].spin.value() == 42.5 and not rows["C11"].free.isChecked()
    assert rows["C22"].free.isChecked()
    assert again.target_panel.samples.value() == 2 and again.target_panel.seed.value() == 7
    assert again.latent_panel.iterations.value() == 321
    assert again.latent_panel.temperature.value() == pytest.approx(0.02)
    assert again.latent_panel.prior_weight.value() == pytest.approx(0.5)


def test_validation_in_a_child_process_matches_and_cancels_fast(tmp_path):
    from app_helpers import small_structure

    from vaereg_core.errors import VaeRegError
    from vaereg_core.inverse.annealing import Cancelled
    from vaereg_core.inverse.design import validate
    from vaereg_core.inverse.targets import parse_target
    from vaereg_studio.design_state import CancelToken
    from vaereg_studio.physics_process import idle_workers, validate_in_process

    def running() -> list:  # the warm validation workers waiting for work are meant to stay
        return [p for p in multiprocessing.active_children() if p not in idle_workers() and p.name != "vaereg-model"]  # the window's model stays

    join_warm_ups()
    target = parse_target({"C11": 40.0, "C12": 15.0}, ["C11", "C22", "C33", "C12", "C13", "C23"])
    voxels = small_structure(19)
    there = validate_in_process(voxels, target, CancelToken())
    here = validate(voxels, target)
    assert there.constants == pytest.approx(here.constants, rel=1e-9) and set(there.relative_error) == {"C11", "C12"}

    def cancel_now():
        cancelled_at.append(time.perf_counter())
        token.cancel()

    big = small_structure(64)
    # 0.05 s: a cancel while the child is still being started; 0.3 s: while it solves.
    for delay in (0.05, 0.3):
        token, cancelled_at = CancelToken(), []
        timer = threading.Timer(delay, cancel_now)
        timer.start()
        with pytest.raises(Cancelled):
            validate_in_process(big, target, token)  # several seconds if not stopped
        timer.join()
        assert time.perf_counter() - cancelled_at[0] < 0.5, f"the cancel at {delay} s did not return within 0.5 s"
        deadline = time.perf_counter() + 30
        while running() and time.perf_counter() < deadline:
            time.sleep(0.05)
        assert not running(), "the killed child process is still running"
    cancelled = CancelToken()
    cancelled.cancel()
    with pytest.raises(Cancelled):
        validate_in_process(big, target, cancelled)
    assert not running(), "a cancelled validation started a child"

    with pytest.raises(VaeRegError, match="binary|0 and 1|values"):
        validate_in_process(np.full((8, 8, 8), 7, np.uint8), target, CancelToken())


def join_warm_ups() -> None:
    """Wait for the warm validation workers a model load started (they then wait idle)."""
    from vaereg_studio.physics_process import WARM_UP_THREAD

    for thread in threading.enumerate():
        if thread.name == WARM_UP_THREAD:
            thread.join(timeout=120)


def test_validations_reuse_a_warm_worker_that_a_cancel_kills_and_that_ends_with_its_pipe():
    from app_helpers import small_structure

    from vaereg_core.errors import VaeRegError
    from vaereg_core.inverse.annealing import Cancelled
    from vaereg_core.inverse.design import validate
    from vaereg_core.inverse.targets import parse_target
    from vaereg_studio import physics_process
    from vaereg_studio.design_state import CancelToken

    target = parse_target({"C11": 40.0}, ["C11", "C22", "C33", "C12", "C13", "C23"])
    first, second = small_structure(12), 1 - small_structure(12)

    def only_worker():
        (worker,) = physics_process.idle_workers()
        return worker

    def stop_idle_workers() -> None:
        join_warm_ups()
        with physics_process._idle_lock:
            stale, physics_process._idle_workers[:] = list(physics_process._idle_workers), []
        for w in stale:
            w.kill()

    # The server start warms as many workers as validations run at once, each with a solve behind it.
    stop_idle_workers()
    physics_process.start_server()
    join_warm_ups()
    assert len(physics_process.idle_workers()) == physics_process._MAX_IDLE
    assert all(w.is_alive() for w in physics_process.idle_workers())
    stop_idle_workers()  # from here on, one worker
    physics_process.validate_in_process(first, target, CancelToken())
    worker = only_worker()
    answer = physics_process.validate_in_process(second, target, CancelToken())
    assert only_worker() is worker and worker.is_alive(), "the second validation did not go to the warm worker"
    assert answer.constants == pytest.approx(validate(second, target).constants, rel=1e-9)
    with pytest.raises(VaeRegError, match="binary|values"):  # an error answers and keeps the worker
        physics_process.validate_in_process(np.full((6, 6, 6), 7, np.uint8), target, CancelToken())
    assert only_worker() is worker

    polls = []

    def cancel_while_solving() -> bool:  # polled before the request, then every 0.05 s while the worker solves
        polls.append(None)
        return len(polls) > 3

    with pytest.raises(Cancelled):
        physics_process.validate_in_process(small_structure(64), target, cancel_while_solving)
    worker.join(timeout=30)
    assert not worker.is_alive() and physics_process.idle_workers() == [], "the cancel did not end the worker"
    physics_process.validate_in_process(first, target, CancelToken())
    fresh = only_worker()
    assert fresh is not worker and fresh.is_alive()

    # The app's end closes the pipe: the idle worker then exits by itself.
    with physics_process._idle_lock:
        kept = physics_process._idle_workers.pop()
    kept.conn.close()
    fresh.join(timeout=30)
    assert not fresh.is_alive() and fresh.exitcode == 0, "an idle worker outlived its pipe"


def test_a_child_that_cannot_start_raises_its_error_in_the_caller():
    from vaereg_studio.physics_process import _start_unless_cancelled

    class Unstartable:
        def start(self):
            raise OSError("no more processes")

    class Pipe:
        closed = False

        def close(self):
            self.closed = True

    send = Pipe()
    with pytest.raises(OSError, match="no more processes"):
        _start_unless_cancelled(Unstartable(), send, lambda: False, 0.01)
    assert send.closed
