"""Loading a model in the app: About names it, predictions beside the structure, clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from app_helpers import TIMEOUT_MS, open_and_wait, open_window, small_structure
from PySide6.QtWidgets import QMessageBox

from vaereg_core import voxel_io

torch = pytest.importorskip("torch")
pytest.importorskip("vaereg_core.model.inference")

pytestmark = pytest.mark.gui


@pytest.fixture
def model_file(tmp_path):
    """A randomly initialised tiny model (19³ grid, six constants, K = 3) saved as a model file."""
    from vaereg_core.model.checkpoint import ModelFile, save_model
    from vaereg_core.model.config import ALL_PROPERTIES, named_config
    from vaereg_core.model.networks import VAERegression
    from vaereg_core.model.scaling import PropertyScaler

    base = named_config("tiny")
    config = dataclasses.replace(base, model=dataclasses.replace(base.model, properties=ALL_PROPERTIES, components=3))
    torch.manual_seed(0)
    values = np.exp(np.random.default_rng(0).uniform(np.log(5), np.log(110), (50, len(ALL_PROPERTIES))))
    model = ModelFile(VAERegression(config.model), config, PropertyScaler.fit(values), {n: (5.0, 110.0) for n in ALL_PROPERTIES}, {"data": "/data/tiny.h5"})
    return save_model(tmp_path / "tiny.pt", model)


def test_loaded_model_predicts_the_shown_structure_and_is_named(qtbot, tmp_path, model_file):
    from vaereg_core.model.inference import load_model

    window = open_window(qtbot, tmp_path)
    assert "No model loaded" in window.structure_panel.predicted.text()
    open_and_wait(qtbot, window, voxel_io.write_voxels(tmp_path / "s19.npy", small_structure(19)))
    with qtbot.waitSignal(window.predicted, timeout=TIMEOUT_MS) as blocker:
        window.open_model(model_file)
    mean, std = load_model(model_file).predict(window.structure.voxels)
    lines = blocker.args[0].splitlines()
    assert len(lines) == 8 and lines[0] == f"C11 = {mean[0]:.1f} ± {std[0]:.1f} GPa"
    assert lines[-2] == "(± one standard deviation, by the model's regressor)"  # no ensemble manifest beside it
    assert lines[-1] == "Material: hard E 120 GPa ν 0.30 / soft E 2.4 GPa ν 0.30"  # a file that records none: the paper's
    assert window.structure_panel.predicted.text() == blocker.args[0]
    assert not window.structure_panel.grid_warning.isVisibleTo(window.structure_panel)

    window.about_action.trigger()
    about = next(b for b in window.findChildren(QMessageBox) if b.objectName() == "aboutDialog")
    for words in ("tiny.pt", "C11, C22, C33, C12, C13, C23", "K = 3", "19³", "tiny.h5"):
        assert words in about.text()
    about.close()

    # A structure of another size is shown, flagged, and gets no (fake) prediction.
    with qtbot.waitSignal(window.predicted, timeout=TIMEOUT_MS) as blocker:
        window.open_file(voxel_io.write_voxels(tmp_path / "s24.npy", small_structure(24)))
    assert "no prediction" in blocker.args[0]
    assert window.structure_panel.grid_warning.isVisibleTo(window.structure_panel)


def test_a_model_of_another_material_is_named_in_the_status_bar_about_and_structure_panel(qtbot, tmp_path, model_file):
    from PySide6.QtWidgets import QLabel

    from vaereg_core.model.checkpoint import load_model_file, save_model

    other = load_model_file(model_file)
    other.metadata["material"] = {"hard": {"E": 410.0, "nu": 0.14}, "soft": {"E": 70.0, "nu": 0.33}}
    path = save_model(tmp_path / "mmc.pt", other)
    named = "hard E 410 GPa ν 0.14 / soft E 70 GPa ν 0.33"
    window = open_window(qtbot, tmp_path)
    with qtbot.waitSignal(window.modelLoaded, timeout=TIMEOUT_MS):
        window.open_model(path)
    assert window.findChild(QLabel, "statusModel").text() == f"mmc.pt · trained for {named}"
    training = window.session.model.training  # the shipped table is the paper's, the model's own is not here
    assert training.properties is None and f"not the model's {named}" in training.reason
    assert f"for {named};" in window.structure_panel.predicted.text()  # no structure yet: the model's description
    with qtbot.waitSignal(window.predicted, timeout=TIMEOUT_MS) as blocker:
        open_and_wait(qtbot, window, voxel_io.write_voxels(tmp_path / "s19.npy", small_structure(19)))
    assert blocker.args[0].splitlines()[-1] == f"Material: {named}"
    window.about_action.trigger()
    about = next(b for b in window.findChildren(QMessageBox) if b.objectName() == "aboutDialog")
    assert f"for {named}" in about.text()
    about.close()


def test_corrupt_model_file_is_a_dialog(qtbot, tmp_path, model_file):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(model_file.read_bytes()[:1000])
    window = open_window(qtbot, tmp_path)
    with qtbot.waitSignal(window.errorShown, timeout=TIMEOUT_MS) as blocker:
        window.open_model(bad)
    assert "bad.pt" in blocker.args[1] and "Traceback" not in blocker.args[1]
    assert window.model is None and "No model loaded" in window.model_description
