"""Which model the app has, in words for the panels and the About box (Qt-free)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from vaereg_core.resources import default_model_path


def model_code_available() -> bool:
    """Whether this installation has the model code (``vaereg_core.model.inference``), without importing it.

    ``find_spec`` of the submodule would run the package's ``__init__``, which
    imports torch: seconds on the UI thread before the window shows.
    """
    package = importlib.util.find_spec("vaereg_core.model")
    if package is None or package.submodule_search_locations is None:
        return False
    return importlib.machinery.PathFinder.find_spec("inference", list(package.submodule_search_locations)) is not None


def no_model_reason() -> str:
    """Why no model is loaded, in one sentence."""
    if not model_code_available():
        return "No model loaded: this version has no model code."
    path = default_model_path()
    if not path.is_file():
        return f"No model loaded: no bundled model at {path}. Use File → Open Model…"
    return "No model loaded."


def load(path: str | os.PathLike) -> Any:
    """Load a model file for inference in this process (the self-test's check; imports torch).

    The app itself loads its model in a child process (:mod:`vaereg_studio.model_process`).

    Raises
    ------
    vaereg_core.errors.ModelFileError
        Missing, truncated, foreign or corrupted file.
    """
    import torch

    from vaereg_core.model.inference import load_model

    # Leave a core to the UI thread: torch's intra-op threads otherwise take
    # every core while a run anneals, and the window stalls (measured on 2 cores).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - 1))
    return load_model(path)


def status_text(info: Any, path: Path) -> str:
    """The status bar's line for a model (its :class:`~vaereg_studio.model_process.ModelInfo`): its file and the
    material it was trained for (phases E, ν)."""
    from vaereg_core.physics.phases import describe as describe_material

    return f"{path.name} · trained for {describe_material(info.material)}"


def prediction_text(model: Any, voxels: np.ndarray) -> str:
    """The prediction of ``model`` (a :class:`~vaereg_studio.model_process.ModelProcess`) for ``voxels`` as
    ``name = mean ± std GPa`` lines and the material they are for (worker thread)."""
    from vaereg_core.physics.phases import describe as describe_material
    from vaereg_studio.model_process import predict

    info = model.info
    if voxels.shape != (info.grid,) * 3:
        shape = " × ".join(str(n) for n in voxels.shape)
        return f"The model takes {info.grid}³ structures; this one is {shape}, so there is no prediction."
    mean, std = model.call(predict, voxels)
    lines = [f"{name} = {m:.1f} ± {s:.1f} {info.units}" for name, m, s in zip(info.property_names, mean, std)]
    source = "forward ensemble" if info.has_forward else "model's regressor"
    return "\n".join([*lines, f"(± one standard deviation, by the {source})", f"Material: {describe_material(info.material)}"])
