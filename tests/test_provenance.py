"""Provenance as a readable table: an exported candidate in ``vaereg info`` and in the app's Structure panel."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from vaereg_core.provenance import model_identity, provenance_rows, solver_line
from vaereg_core.voxel_io import read_voxel_file

TARGET = ["C11=40", "C22=40", "C33=40", "C12=15", "C13=15", "C23=15"]


def vaereg(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vaereg_core.cli", *map(str, args)], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Candidates of ``vaereg inverse --validate`` with the tiny random model: (folder, model path)."""
    from inverse_helpers import save_tiny_model

    folder = tmp_path_factory.mktemp("provenance")
    model = save_tiny_model(folder / "tiny.pt")
    r = vaereg("inverse", "--model", model, "--target", *TARGET, "--validate", "--out", folder / "inv")
    assert r.returncode == 0, r.stderr
    return folder / "inv", model


def test_an_exported_candidate_reads_as_a_table(exported):
    folder, model = exported
    _, metadata = read_voxel_file(folder / "k1.vti")
    table = {row.quantity: row for row in provenance_rows(metadata)}
    prefix = model_identity(model).split("sha256 ")[1].rstrip(")")
    assert table["Model"].value == f"tiny.pt · sha256 {prefix}"
    assert table["Target (GPa)"].value == "C11 40, C22 40, C33 40, C12 15, C13 15, C23 15"
    assert table["Candidate"].value.startswith(f"k1: mean of mixture component 1, weight π {metadata['weight']:.4g}")
    predicted = metadata["predicted_GPa"]
    assert table["Predicted by the model (GPa)"].value.startswith(f"C11 {predicted['C11']:.4g} ± {metadata['predicted_std_GPa']['C11']:.2g}, C22 ")
    validation = metadata["validation"]
    assert table["Solver result (GPa)"].value.startswith(f"C11 {validation['constants_GPa']['C11']:.4g}, ")
    assert table["Error to target"].value.startswith(f"{100 * validation['mean_relative_error']:.1f} % mean (C11 ")
    solver = table["Solver"].value  # the settings as one line
    assert solver.startswith(f"FFT, {validation['solver']['discretization']}, tol {validation['solver']['tol']:.4g}, ")
    assert "iterations" in solver and solver.endswith(" s") and "\n" not in solver
    assert table["Hard-phase volume fraction"].value == f"{metadata['volume_fraction']:.4f}"
    latent = table["Latent vector"]
    assert latent.value.startswith("4 values, norm ") and json.loads(latent.copy) == pytest.approx(metadata["latent"])
    # Every stored key is somewhere in the table; nothing is cut off.
    assert not [row for row in table.values() if row.value.startswith("{")]


def test_vaereg_info_prints_the_table(exported):
    folder, model = exported
    text = vaereg("info", folder / "k2.vti").stdout
    assert "stored with the file" in text
    lines = {line.split("  ")[0]: line for line in text.splitlines()}
    assert "Target (GPa)" in lines and lines["Target (GPa)"].endswith("C11 40, C22 40, C33 40, C12 15, C13 15, C23 15")
    assert "tiny.pt · sha256 " in lines["Model"] and "k2: mean of mixture component 2" in lines["Candidate"]
    assert "Latent vector" in lines and "{" not in text.split("stored with the file")[1]


def test_unknown_and_foreign_metadata_stay_visible():
    rows = provenance_rows({"stress_GPa": [1.5, 2.0], "weird": {"a": 1}, "trajectory": [{"iteration": 1}] * 3, "long": list(range(20))})
    table = {row.quantity: row for row in rows}
    assert table["Stress (GPa)"].value == "[1.5, 2]" and table["Weird"].value == "a 1"
    assert table["Trajectory"].value == "3 entries" and table["Long"].copy == json.dumps([float(v) for v in range(20)])
    assert [(r.quantity, r.value) for r in provenance_rows([1, 2])] == [("Metadata", "[1, 2]")]
    # A value of an unexpected type (a foreign file's) is shown as it is, under its own name.
    assert provenance_rows({}) == [] and [(r.quantity, r.value) for r in provenance_rows({"target_GPa": "C11=40"})] == [("Target (GPa)", "C11=40")]
    assert solver_line({"discretization": "rotated", "tol": 1e-4}, {"C11": 12, "C22": 30}, 1.26) == "FFT, rotated, tol 0.0001; 12–30 iterations; 1.3 s"


@pytest.mark.gui
def test_the_structure_panel_shows_an_exported_candidate_as_a_table(qtbot, tmp_path, exported):
    from app_helpers import TIMEOUT_MS, open_and_wait, open_window
    from PySide6.QtWidgets import QApplication, QLabel

    folder, _ = exported
    window = open_window(qtbot, tmp_path)
    open_and_wait(qtbot, window, folder / "k1.vti")
    with qtbot.waitSignal(window.exported, timeout=TIMEOUT_MS) as blocker:  # exported again by the app: its own rows added
        window.export_structure(tmp_path / "again.npz")
    open_and_wait(qtbot, window, blocker.args[0])
    table = window.structure_panel.provenance
    labels = {table.form.labelForField(table.form.itemAt(i, table.form.ItemRole.FieldRole).widget()).text(): i for i in range(table.form.rowCount())}
    assert {"Model", "Target (GPa)", "Solver", "Latent vector", "Exported by"} <= set(labels)
    texts = [label.text() for label in table.findChildren(QLabel)]
    assert "C11 40, C22 40, C33 40, C12 15, C13 15, C23 15" in texts
    assert not any("… and" in text or text.startswith("{") for text in texts)
    (copy,) = table.copy_buttons()
    copy.click()
    _, metadata = read_voxel_file(folder / "k1.vti")
    np.testing.assert_allclose(json.loads(QApplication.clipboard().text()), metadata["latent"])


@pytest.mark.gui
def test_a_long_provenance_scrolls_in_its_panel_instead_of_growing_the_window(qtbot, tmp_path, exported):
    """Word-wrapped rows once grew the panel, the dock and the window in a dozen steps, each re-rendering the 3-D view."""
    from app_helpers import TIMEOUT_MS, open_and_wait, open_window
    from PySide6.QtCore import QEvent, QObject

    class Resizes(QObject):
        count = 0

        def eventFilter(self, watched, event):
            self.count += event.type() == QEvent.Type.Resize
            return False

    folder, _ = exported
    window = open_window(qtbot, tmp_path)
    window.docks["structure"].raise_()
    open_and_wait(qtbot, window, folder / "k1.vti")
    qtbot.wait(300)
    size, resizes = window.size(), Resizes()
    window.viewer.installEventFilter(resizes)
    voxels, metadata = read_voxel_file(folder / "k1.vti")
    notes = {f"note {i}": "a value long enough to be wrapped over several lines of the panel " * 2 for i in range(20)}
    with qtbot.waitSignal(window.structureShown, timeout=TIMEOUT_MS):
        window.session.show_voxels(voxels, "annotated", {**metadata, **notes})
    qtbot.wait(300)
    assert len(window.structure_panel.provenance.rows) > 20
    assert window.size() == size and resizes.count == 0
