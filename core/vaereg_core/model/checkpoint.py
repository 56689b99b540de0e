"""Model files: a versioned, self-describing torch file with a checksum of the weights.

Content (a dict readable with ``torch.load(weights_only=True)``)::

    format      "vaereg-model"
    version     1
    kind        "vae-regression" or "regression-only"
    config      RunConfig as a dict (model, loss, train)
    properties  names, units ("GPa"), normalisation, ranges {name: [min, max]} of the training data
    metadata    provenance (dataset, split seed, epoch, losses, versions) and ``material``, the
                phases of the training data ({"hard": {"E", "nu"}, "soft": {...}}; absent: the paper's)
    state_dict  the network's weights
    checksum    SHA-256 of the weights (names, dtypes, shapes, bytes)

Loading anything else, a truncated file, a newer version or weights that do
not match their checksum raises :class:`~vaereg_core.errors.ModelFileError`
with a sentence a user can act on.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vaereg_core.atomic_files import atomic_paths
from vaereg_core.errors import ModelFileError, PhysicsError
from vaereg_core.model.config import RunConfig
from vaereg_core.model.networks import RegressionOnly, VAERegression
from vaereg_core.model.scaling import PropertyScaler
from vaereg_core.physics.phases import Material

FORMAT = "vaereg-model"
VERSION = 1
KINDS = {"vae-regression": VAERegression, "regression-only": RegressionOnly}
MODEL_FILE = "model.pt"


@dataclass
class ModelFile:
    """A network with everything needed to use it on structures and report in GPa."""

    network: nn.Module
    config: RunConfig
    scaler: PropertyScaler
    ranges: dict[str, tuple[float, float]]
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The stored weights' checksum (empty for a model not read from a file): what files derived from the model, such as its latent map, refer to.
    checksum: str = ""

    @property
    def kind(self) -> str:
        return next(k for k, cls in KINDS.items() if isinstance(self.network, cls))

    @property
    def property_names(self) -> tuple[str, ...]:
        return self.config.model.properties

    @property
    def material(self) -> Material:
        """The phases the model was trained on (the paper's when the file records none)."""
        return Material.from_record(self.metadata.get("material"))


def state_checksum(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state dict, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_model(path: str | os.PathLike, model: ModelFile, *, dtype: torch.dtype | None = None) -> Path:
    """Write a model file atomically (temporary file, then rename).

    ``dtype`` (e.g. ``torch.float16``) stores the floating-point weights in that
    precision, halving a shipped model's size; loading converts them back to
    the network's float32.
    """
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.network.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    names = model.property_names
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "kind": model.kind,
        "config": model.config.to_dict(),
        "properties": {
            "names": list(names),
            "units": "GPa",
            "normalisation": model.scaler.to_dict(),
            "ranges": {n: [float(a), float(b)] for n, (a, b) in model.ranges.items()},
        },
        "metadata": model.metadata,
        "state_dict": state,
        "checksum": state_checksum(state),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_paths(path) as (temp,):
        torch.save(payload, temp)
    return path


def resolve_model_path(path: str | os.PathLike) -> Path:
    """A model file, or the ``model.pt`` inside a run folder."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def load_model_file(path: str | os.PathLike, device: torch.device | str = "cpu") -> ModelFile:
    """Read and check a model file; the network is returned in evaluation mode on ``device``.

    Raises
    ------
    ModelFileError
        Missing, unreadable, truncated, foreign, newer-version or corrupted file.
    """
    path = resolve_model_path(path)
    if not path.is_file():
        raise ModelFileError(path, "no such model file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and torch errors all mean: not a readable model file
        raise ModelFileError(path, f"not a VAEReg Studio model file, or truncated ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelFileError(path, "foreign file: a torch file, but not a VAEReg Studio model")
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ModelFileError(path, f"model file version {version} is newer than this program reads ({VERSION}); update VAEReg Studio")
    missing = [k for k in ("kind", "config", "properties", "state_dict", "checksum") if k not in data]
    if missing:
        raise ModelFileError(path, f"incomplete model file (missing {', '.join(missing)})")
    if state_checksum(data["state_dict"]) != data["checksum"]:
        raise ModelFileError(path, "the weights do not match their checksum (corrupted file)")
    try:
        config = RunConfig.from_dict(data["config"])
        props = data["properties"]
        scaler = PropertyScaler.from_dict(props["normalisation"])
        ranges = {n: (float(a), float(b)) for n, (a, b) in props["ranges"].items()}
        # Built on the meta device and given the stored tensors: initialising weights that are overwritten at
        # once was half of a load (0.13-0.2 s a shipped network on 2 cores). Stored float16 becomes float32.
        with torch.device("meta"):
            network = KINDS[data["kind"]](config.model)
        state = {k: v.float() if v.is_floating_point() else v for k, v in data["state_dict"].items()}
        network.load_state_dict(state, assign=True)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelFileError(path, f"inconsistent model file ({type(exc).__name__}: {exc})") from None
    if tuple(props["names"]) != config.model.properties or props.get("units") != "GPa":
        raise ModelFileError(path, "inconsistent model file (property names or units do not match the configuration)")
    metadata = data.get("metadata", {})
    try:
        Material.from_record(metadata.get("material"))
    except (PhysicsError, AttributeError) as exc:
        raise ModelFileError(path, f"inconsistent model file (its material: {exc})") from None
    return ModelFile(network.to(device).eval(), config, scaler, ranges, metadata, data["checksum"])
