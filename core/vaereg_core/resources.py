"""Where the files the application ships (samples, recipe, property table, models) are found."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_VAR = "VAEREG_RESOURCES"


def resources_dir() -> Path:
    """The ``resources/`` folder.

    Looked up in order: the ``VAEREG_RESOURCES`` environment variable, the
    PyInstaller bundle (``sys._MEIPASS/resources``), and the source tree
    (``resources/`` beside ``core/``).
    """
    if ENV_VAR in os.environ:
        return Path(os.environ[ENV_VAR])
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is not None:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def default_sample_path() -> Path:
    """The sample structure the app opens when started without a file."""
    return resources_dir() / "samples" / "default.vti"


def is_shipped_sample(path: str | os.PathLike) -> bool:
    """Whether ``path`` is one of the sample structures this installation ships (``resources/samples/``).

    Those files are as trusted as the code installed beside them (whoever can
    change one can change the code), so they need no sandboxed reader.
    """
    samples = (resources_dir() / "samples").resolve()
    return Path(path).resolve().is_relative_to(samples)


def default_model_path() -> Path:
    """The model the app opens at start and the CLI uses without ``--model``.

    ``resources/models/DEFAULT`` names it (one file name in that folder), so
    that the shipped default changes without code; without that file it is
    ``resources/models/default.pt``.
    """
    models = resources_dir() / "models"
    pointer = models / "DEFAULT"
    if pointer.is_file():
        name = pointer.read_text().strip()
        if name and "/" not in name and "\\" not in name:
            return models / name
    return models / "default.pt"


def default_dataset_path() -> Path:
    """The shipped property table of the full dataset (no voxels; ``vaereg dataset materialize`` makes them)."""
    return resources_dir() / "dataset" / "elastic.h5"
