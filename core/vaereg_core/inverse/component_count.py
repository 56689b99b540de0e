"""How many mixture components? Refit the conditional prior for K = 1, 2, ... on a trained model.

The prior p(z | c) enters training only through the KL term (paper eq. 3).
For a trained VAE-Regression, the K-component generator that best explains
its encoder is the one that minimises the mean KL(q(z | x) || p(z | c(x)))
over the training structures. Refitting the small generator network for each
K, with the trunk, encoder and decoder frozen, takes seconds on a CPU; the
paper instead retrained whole models per K. What this does not undo: the
encoder was shaped by the prior it was trained with.

Two measured criteria per K:

- the mean KL on the validation split (lower: the prior describes where the
  encoder puts structures of a given stiffness better), with the number of
  components the fit actually uses;
- the inverse error: each component mean decoded with the model's decoder and
  validated by the solver (:func:`~vaereg_core.experiments.inverse_evaluation.prior_candidates_experiment`).

Here c is the structure's true property vector (standardised as the model
does), as at inverse design, where c is the target.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass

import torch

from vaereg_core.model.checkpoint import ModelFile
from vaereg_core.model.inference import LoadedModel
from vaereg_core.model.networks import MixtureGenerator, VAERegression, glorot_init
from vaereg_core.model.posteriors import Posteriors, mean_kl
from vaereg_core.model.priors import prior_kl

#: A component whose mean weight over the validation structures is below this is counted as unused.
UNUSED_WEIGHT = 0.05


def fit_generator(
    train: Posteriors,
    components: int,
    hidden: int,
    *,
    steps: int = 3000,
    learning_rate: float = 5e-3,
    seed: int = 0,
) -> MixtureGenerator:
    """A K-component mixture generator (the paper's Table 5 network) fitted to minimise the mean KL over ``train``.

    Full-batch Adam from Keras' initialisation; deterministic for a seed.
    """
    torch.manual_seed(seed)
    generator = MixtureGenerator(train.c.shape[1], train.mean.shape[1], components, hidden)
    glorot_init(generator)
    optimiser = torch.optim.Adam(generator.parameters(), lr=learning_rate)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = prior_kl(train.mean, train.log_var, generator(train.c)).mean()
        loss.backward()
        optimiser.step()
    return generator.eval()


def used_components(generator: MixtureGenerator, data: Posteriors) -> int:
    """Components whose mean weight over ``data`` is at least :data:`UNUSED_WEIGHT`."""
    with torch.no_grad():
        weights = generator(data.c).pi.mean(0)
    return int((weights >= UNUSED_WEIGHT).sum())


@dataclass
class ComponentFit:
    """The generator refitted with one number of components and one seed."""

    components: int
    seed: int
    train_kl: float
    val_kl: float
    used: int
    generator: MixtureGenerator

    def to_dict(self) -> dict:
        """JSON form (without the network)."""
        return {k: v for k, v in self.__dict__.items() if k != "generator"}


def component_study(
    train: Posteriors,
    val: Posteriors,
    hidden: int,
    *,
    components: tuple[int, ...] = (1, 2, 3, 4, 5),
    seeds: int = 3,
    steps: int = 3000,
) -> list[ComponentFit]:
    """Fit a generator for every K in ``components`` from ``seeds`` initialisations each."""
    fits = []
    for k in components:
        for seed in range(seeds):
            g = fit_generator(train, k, hidden, steps=steps, seed=seed)
            fits.append(ComponentFit(k, seed, mean_kl(g, train), mean_kl(g, val), used_components(g, val), g))
    return fits


def best_fits(fits: list[ComponentFit]) -> dict[int, ComponentFit]:
    """Per K, the fit with the lowest training KL (chosen without looking at validation)."""
    best: dict[int, ComponentFit] = {}
    for f in fits:
        if f.components not in best or f.train_kl < best[f.components].train_kl:
            best[f.components] = f
    return best


def refitted_model_file(model: LoadedModel, fit: ComponentFit, note: dict) -> ModelFile:
    """The model's file with its prior replaced by a refitted generator (K taken from the fit).

    The generator learns in training from the regressor's noisy predictions of c
    and through a few KL steps per batch; refitted on the final encoder's
    posteriors with the true c, its KL is far lower (measured on the C11 model:
    3.08 -> 0.22 nats) and its components decode where the data of that
    stiffness lie. Everything else stays as trained; ``note`` is recorded in
    the metadata under ``prior_refit``.
    """
    source = model.file
    config = dataclasses.replace(
        source.config, model=dataclasses.replace(source.config.model, prior="mixture", components=fit.components)
    )
    network = VAERegression(config.model)
    own = {k: v for k, v in source.network.state_dict().items() if not k.startswith("generator.")}
    network.load_state_dict({**own, **{f"generator.{k}": v for k, v in fit.generator.state_dict().items()}})
    metadata = {**source.metadata, "prior_refit": {**note, "components": fit.components, "train_kl": fit.train_kl, "val_kl": fit.val_kl}}
    return ModelFile(network.float().eval(), config, source.scaler, dict(source.ranges), metadata)


def with_generator(model: LoadedModel, generator: MixtureGenerator) -> LoadedModel:
    """A copy of ``model`` whose prior is ``generator``; its other layers are shared, not copied."""
    twin = copy.copy(model)
    twin.network = copy.copy(model.network)
    # nn.Module keeps its children in a dict: give the copy its own before replacing the generator.
    twin.network._modules = dict(model.network._modules)
    twin.network.generator = generator.to(model.device)
    return twin


def encoded_splits(model_path: str | os.PathLike, data: str | os.PathLike, device: str = "auto", max_structures: int | None = None):
    """Model, property columns, training properties (GPa) and train and validation posteriors, for refitting its prior.

    Each split is capped at ``max_structures`` random structures.

    Raises
    ------
    ValueError
        A regression-only model (it has no prior).
    """
    from vaereg_core.model.config import ALL_PROPERTIES
    from vaereg_core.model.inference import load_model
    from vaereg_core.model.posteriors import encode_posteriors
    from vaereg_core.model.splits import load_split

    model = load_model(model_path, device)
    if not model.is_generative:
        raise ValueError(f"{model_path}: a regression-only model has no prior to refit")
    columns = [ALL_PROPERTIES.index(n) for n in model.property_names]
    train, val = (load_split(data, name, model.file.config, max_structures) for name in ("train", "val"))
    posteriors = [encode_posteriors(model, split.voxels, split.properties[:, columns]) for split in (train, val)]
    return model, columns, train.properties[:, columns], *posteriors


def refit_prior(
    model_path: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    components: int,
    seeds: int = 3,
    steps: int = 3000,
    max_structures: int | None = None,
    device: str = "auto",
) -> tuple[ComponentFit, float]:
    """Write a copy of a model whose prior has ``components`` components, refitted to its encoder (float16 weights).

    Returns
    -------
    (ComponentFit, float)
        The chosen fit (lowest training KL of ``seeds``) and the validation KL of the model's own prior before.
    """
    from vaereg_core.model.checkpoint import save_model

    if components < 1:
        raise ValueError("--components must be 1 or more")
    model, _, _, train, val = encoded_splits(model_path, data, device, max_structures)
    before = mean_kl(model.network.generator, val)
    fits = component_study(train, val, model.file.config.model.generator_hidden, components=(components,), seeds=seeds, steps=steps)
    fit = best_fits(fits)[components]
    note = {"source": str(model_path), "data": str(data), "structures": len(train), "seeds": seeds, "steps": steps,
            "val_kl_before": before}
    save_model(out, refitted_model_file(model, fit, note), dtype=torch.float16)
    return fit, before
