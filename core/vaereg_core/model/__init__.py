"""VAE-Regression with a Gaussian or Gaussian-mixture conditional prior (the paper's model) in PyTorch.

Modules: :mod:`.config` (settings and named configurations), :mod:`.networks`,
:mod:`.priors` (KL terms), :mod:`.losses`, :mod:`.vgg` (local VGG19 weights),
:mod:`.scaling`, :mod:`.checkpoint` (model files), :mod:`.inference` (API for the
app and inverse design), :mod:`.training`, :mod:`.evaluation` (report and baselines).
"""

from vaereg_core.model.config import NAMED_CONFIGS, LossConfig, ModelConfig, RunConfig, TrainConfig, load_config, named_config
from vaereg_core.model.inference import LoadedModel, default_model, load_model
from vaereg_core.model.networks import RegressionOnly, VAERegression

__all__ = [
    "NAMED_CONFIGS",
    "LoadedModel",
    "LossConfig",
    "ModelConfig",
    "RegressionOnly",
    "RunConfig",
    "TrainConfig",
    "VAERegression",
    "default_model",
    "load_config",
    "load_model",
    "named_config",
]
