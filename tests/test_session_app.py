"""The app on the session: File → Save Session…, Open Session… (panels restored) and Export Report…, under Xvfb."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from app_helpers import TIMEOUT_MS, open_window, save_artifact, synthetic_resources

pytest.importorskip("vaereg_core.model.inference")
from inverse_helpers import save_tiny_model  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def model_path(tmp_path, monkeypatch) -> Path:
    synthetic_resources(tmp_path / "resources", monkeypatch)
    (tmp_path / "models").mkdir()
    return save_tiny_model(tmp_path / "models" / "c11.pt", components=2, properties=("C11",))


def loaded_window(qtbot, folder: Path, model_path: Path | None):
    window = open_window(qtbot, folder)
    window.session.map_cache_dir = folder / "cache"
    window.session.map_structures = 48
    if model_path is not None:
        with qtbot.waitSignals([window.modelLoaded, window.latent_panel.mapReady], timeout=TIMEOUT_MS):
            window.open_model(model_path)
    return window


def test_a_saved_session_reopens_in_the_panels_and_exports_a_report(qtbot, tmp_path, model_path):
    window = loaded_window(qtbot, tmp_path / "first", model_path)
    panel, box, latent = window.target_panel, window.target_panel.design_box, window.latent_panel
    panel.set_target_values({"C11": 30.0})
    with qtbot.waitSignal(panel.candidatesShown, timeout=TIMEOUT_MS):
        panel.find_button.click()
    qtbot.waitUntil(lambda: all(e.status == "validated" for e in window.session.candidates), timeout=TIMEOUT_MS)
    box.seconds.setValue(5)
    qtbot.waitUntil(lambda: box.verdict is not None, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(box.finished, timeout=TIMEOUT_MS) as blocker:
        box.button.click()
    assert blocker.args[0] is not None
    latent.iterations.setValue(4)
    with qtbot.waitSignal(latent.runFinished, timeout=TIMEOUT_MS):
        latent.start_run()
    window.viewer.set_colours(hard="#2ca02c")

    path = tmp_path / "study.vaeregsession"
    with qtbot.waitSignal(window.exported, timeout=TIMEOUT_MS):
        window.save_session(path)
    candidates = [(c.label, c.table.text()) for c in panel.visible_cards()]
    designs = [(c.label, c.table.text()) for c in box.visible_cards()]
    window.close()

    again = loaded_window(qtbot, tmp_path / "second", None)  # no model: the session's own is loaded
    again.target_panel.resize(620, 900)
    with qtbot.waitSignal(again.sessionRestored, timeout=TIMEOUT_MS):
        again.open_session(path)
    qtbot.waitUntil(lambda: len(again.target_panel.visible_cards()) == len(candidates) and len(again.target_panel.design_box.visible_cards()) == len(designs), timeout=TIMEOUT_MS)
    qtbot.wait(200)
    rows = {r.name: r for r in again.target_panel.rows}
    assert rows["C11"].spin.value() == 30.0
    # Cards say what they said: predictions, solver constants and errors.
    assert [(c.label, c.table.text()) for c in again.target_panel.visible_cards()] == candidates
    assert [(c.label, c.table.text()) for c in again.target_panel.design_box.visible_cards()] == designs
    assert [label for label, _ in again.latent_panel.designs] == [label for label, _ in designs]
    (run,) = again.latent_panel.runs
    assert run.row.status_text == "done" and len(run.points) == len(run.outcome.refinement.anneal.trajectory)
    assert again.viewer.options.hard_colour == "#2ca02c" and again.view_panel.hard_colour.colour() == "#2ca02c"
    save_artifact(again.target_panel, "session_reopened_target_panel.png")
    again.docks["latent"].raise_()
    qtbot.wait(200)
    save_artifact(again.latent_panel, "session_reopened_latent_panel.png")

    # The report holds every structure's picture and numbers.
    report = tmp_path / "report.html"
    with qtbot.waitSignal(again.exported, timeout=TIMEOUT_MS):
        again.export_report(report)
    text = report.read_text()
    labels = [label for label, _ in designs] + [label for label, _ in candidates] + ["run 1 best"]
    sections = re.findall(r"<section class='entry' id='([^']+)'>(.*?)</section>", text, flags=re.S)
    assert [s[0] for s in sections] == [label.replace(" ", "-") for label in labels]
    for _, body in sections:
        assert len(re.findall(r"src='data:image/png;base64,[A-Za-z0-9+/=]{1000,}'", body)) == 1
        assert "mean |error| by the solver" in body
    session = again.session
    first = session.candidates[0]
    assert f"{first.validation.constants['C11']:.2f}" in text
    assert f"{first.found.candidate.predicted[0]:.1f} ± {first.found.candidate.predicted_std[0]:.1f}" in text
    assert session.model.identity in text and "Feasibility" in text and "Model accuracy" in text

    # A damaged session is one line in a dialog; the panels keep what they show.
    damaged = tmp_path / "damaged.vaeregsession"
    damaged.write_bytes(path.read_bytes()[:300])
    with qtbot.waitSignal(again.errorShown, timeout=TIMEOUT_MS) as blocker:
        again.open_session(damaged)
    title, message = blocker.args
    assert title == "Cannot open the session damaged.vaeregsession." and "damaged session" in message and "\n" not in message
    assert len(again.target_panel.visible_cards()) == len(candidates)
