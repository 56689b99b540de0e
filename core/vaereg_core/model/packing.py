"""Ship a trained run: a compact model file (float16 weights) and its training log beside it."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from vaereg_core import microstructure
from vaereg_core.model.checkpoint import MODEL_FILE, load_model_file, save_model
from vaereg_core.model.inference import LoadedModel
from vaereg_core.model.training import RunFolderError

LOG_FILES = ("config.json", "metrics.csv", "metrics.json", "loss_curves.png")


def training_summary(metrics_csv: Path) -> dict:
    """Epochs run, best epoch (lowest validation loss) and training hours from a run's ``metrics.csv``."""
    with metrics_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    best = min(rows, key=lambda r: float(r["val_total"]))
    summary = {
        "epochs_run": len(rows),
        "best_epoch": int(best["epoch"]),
        "training_hours": round(sum(float(r["seconds"]) for r in rows) / 3600, 2),
    }
    summary.update({k: round(float(v), 3) for k, v in best.items() if k.startswith("val_mape")})
    return summary


def check_structures(grid: int, count: int = 4) -> np.ndarray:
    """A few recipe structures at the model's grid, for before/after comparisons."""
    filters = [microstructure.filter_index(s) for s in ((1, 8, 8), (8, 1, 1), (2, 2, 2), (4, 4, 1))][:count]
    return np.stack([microstructure.generate(seed=5, field_index=i, filter_index=f, volume_fraction=0.3 + 0.1 * i, size=grid) for i, f in enumerate(filters)])


def pack_run(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    data: str | None = None,
    notes: dict[str, str] | None = None,
    half: bool = True,
    overwrite: bool = False,
) -> tuple[Path, dict]:
    """Write ``run_dir``'s best model to ``out`` for shipping, with its training log in ``<out stem>.training/``.

    Parameters
    ----------
    run_dir : path
        A trained run folder (``model.pt``, ``metrics.csv``, ...).
    out : path
        The model file to write.
    data : str, optional
        Dataset path to record (e.g. ``resources/dataset/elastic.h5``); default the run's.
    notes : dict, optional
        Provenance to record in the model's metadata (hardware, time, ...).
    half : bool
        Store float16 weights (predictions are compared with float32's).
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    path, figures
        The model file, and ``{"max_relative_change": ..., "log": folder}``.
    """
    run_dir, out = Path(run_dir), Path(out)
    if out.exists() and not overwrite:
        raise RunFolderError(out, "exists; pass --overwrite to replace it")
    model = load_model_file(run_dir / MODEL_FILE)
    summary = training_summary(run_dir / "metrics.csv") if (run_dir / "metrics.csv").is_file() else {}
    model.metadata = {
        **model.metadata,
        **({"data": data} if data else {}),
        "training": summary,
        "weights": "float16" if half else "float32",
        **(notes or {}),
    }
    save_model(out, model, dtype=torch.float16 if half else None)

    structures = check_structures(model.config.model.grid)
    before = LoadedModel(model, torch.device("cpu")).predict(structures)[0]
    after = LoadedModel(load_model_file(out), torch.device("cpu")).predict(structures)[0]
    change = float(np.max(np.abs(after - before) / np.abs(before)))

    log = out.with_name(f"{out.stem}.training")
    log.mkdir(exist_ok=True)
    for name in LOG_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, log / name)
    return out, {"max_relative_change": change, "log": log}
