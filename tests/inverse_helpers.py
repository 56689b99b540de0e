"""A small, randomly initialised VAE-Regression model for inverse-design tests.

Random weights make no physical sense; the tests using it check mechanics
(ordering, determinism, cancellation, file output), not accuracy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from vaereg_core.model.checkpoint import ModelFile, save_model
from vaereg_core.model.config import ALL_PROPERTIES, named_config
from vaereg_core.model.inference import LoadedModel
from vaereg_core.model.networks import VAERegression
from vaereg_core.model.scaling import PropertyScaler


def tiny_model_file(components: int = 3, properties=ALL_PROPERTIES, prior: str = "mixture", seed: int = 0) -> ModelFile:
    """A tiny (19^3, 4-d latent) model with random weights and a plausible scaler."""
    torch.manual_seed(seed)
    base = named_config("tiny")
    config = dataclasses.replace(base, model=dataclasses.replace(base.model, properties=tuple(properties), prior=prior, components=components))
    values = np.random.default_rng(seed).uniform(5, 100, size=(64, len(properties)))
    return ModelFile(
        network=VAERegression(config.model),
        config=config,
        scaler=PropertyScaler.fit(values),
        ranges={p: (5.0, 100.0) for p in properties},
        metadata={"note": "random weights, for tests"},
    )


def tiny_model(**kwargs) -> LoadedModel:
    """The tiny model, ready for inference on the CPU."""
    return LoadedModel(tiny_model_file(**kwargs), torch.device("cpu"))


def save_tiny_model(path: Path, **kwargs) -> Path:
    """The tiny model as a model file."""
    return save_model(path, tiny_model_file(**kwargs))
