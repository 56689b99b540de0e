"""Settings of a model, its loss and its training, as dataclasses (one schema for CLI, GUI and files).

A run configuration is a JSON document with three sections, ``model``,
``loss`` and ``train``, optionally starting from a named configuration::

    {"base": "paper-cpu", "model": {"properties": ["C11", "C22", "C33", "C12", "C13", "C23"]},
     "train": {"max_epochs": 50}}

Named configurations (:data:`NAMED_CONFIGS`): ``paper`` is appendix A of the
paper exactly (51³, 16-d latent, C11, two-component Gaussian-mixture prior,
VGG19 style loss); ``paper-gaussian`` the same with the Gaussian prior;
``paper-6`` all six constants; ``paper-cpu`` the paper's networks with the
two-point reconstruction loss (the CPU default); ``vae`` a vanilla VAE (standard
normal prior, no regression loss) for the latent baselines; ``tiny`` a small model on
19³ grids for tests.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ALL_PROPERTIES = ("C11", "C22", "C33", "C12", "C13", "C23")
PRIORS = ("gaussian", "mixture", "standard")
RECONSTRUCTION_LOSSES = ("style-vgg19", "two-point", "bce")
INITIALISATIONS = ("glorot", "torch")
#: Networks that learn in each finishing stage; every other weight stays as the ``--init-from`` model has it.
STAGE_LEARNERS = {"decoder": ("decoder",), "generative": ("encoder", "decoder", "generator")}
STAGES = ("joint", *STAGE_LEARNERS)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the networks (appendix A, Tables 2-5).

    Parameters
    ----------
    grid : int
        Edge of the cubic input grid (51 in the paper).
    trunk_channels : tuple of int
        Channels of the conv blocks of the shared trunk; each block halves the grid.
    trunk_dense : int
        Width of the trunk's last dense layer.
    head_dense : int
        Width of the hidden layer of each encoder/regressor branch.
    latent_dim : int
        Latent dimensions.
    properties : tuple of str
        Predicted constants, a subset of C11 C22 C33 C12 C13 C23 (the paper: C11, or all six).
    prior : {'gaussian', 'mixture', 'standard'}
        Conditional prior p(z | c); ``standard`` is N(0, I) whatever c (with a zero
        regression weight: the vanilla VAE of the paper's VAE + GPR/SVR/linear rows).
    components : int
        Mixture components K (ignored by the Gaussian prior).
    generator_hidden : int
        Width of the tanh layer of the mixture generator.
    decoder_dense : tuple of int
        Hidden widths of the decoder's dense stack before the reshape.
    decoder_channels : tuple of int
        Channels of the decoder's upsampling blocks; each block doubles the grid.
    negative_slope : float
        Slope of the LeakyReLUs.
    prior_gradient_to_regressor : bool
        Whether the KL term's gradient reaches the regressor through the prior's
        input c. The paper lets it (c is the regressor's sample); it pulls each
        prediction towards the value whose prior best fits the current posterior,
        which fights the regression: from a Reg-only start, the validation MSE of
        standardised log C11 rose 0.04 -> 0.66 in 10 steps with it, to 0.10
        without. False stops that gradient: the regressor learns from the
        regression term alone, the generator still learns p(z | c).
    init : {'glorot', 'torch'}
        Weight initialisation: ``glorot`` is Keras' default (Glorot-uniform weights,
        zero biases), which the paper's networks were trained with; ``torch`` is
        PyTorch's default, whose smaller weights shrink the signal about tenfold more
        through the eight layers before the regressor's output.
    """

    grid: int = 51
    trunk_channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    trunk_dense: int = 2048
    head_dense: int = 1024
    latent_dim: int = 16
    properties: tuple[str, ...] = ("C11",)
    prior: str = "mixture"
    components: int = 2
    generator_hidden: int = 8
    decoder_dense: tuple[int, ...] = (32, 64)
    decoder_channels: tuple[int, ...] = (64, 32, 16)
    negative_slope: float = 0.2
    prior_gradient_to_regressor: bool = False
    init: str = "glorot"

    def __post_init__(self) -> None:
        if self.init not in INITIALISATIONS:
            raise ValueError(f"init must be one of {INITIALISATIONS}, got {self.init!r}")
        unknown = [p for p in self.properties if p not in ALL_PROPERTIES]
        if unknown or not self.properties or len(set(self.properties)) != len(self.properties):
            raise ValueError(f"properties must be distinct names among {', '.join(ALL_PROPERTIES)}, got {self.properties}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {self.prior!r}")
        if self.components < 1:
            raise ValueError(f"components must be >= 1, got {self.components}")
        if self.grid >> len(self.trunk_channels) < 1:
            raise ValueError(f"grid {self.grid} is too small for {len(self.trunk_channels)} pooling blocks")
        if self.decoder_base < 1:
            raise ValueError(f"grid {self.grid} is too small for {len(self.decoder_channels)} upsampling blocks")

    @property
    def n_properties(self) -> int:
        """Number of predicted constants P."""
        return len(self.properties)

    @property
    def n_components(self) -> int:
        """Components of the prior (1 for the Gaussian prior)."""
        return self.components if self.prior == "mixture" else 1

    @property
    def decoder_base(self) -> int:
        """Edge of the decoder's first 3-D feature map (6 for 51³: 6·2³ = 48, then a 4³ transposed conv)."""
        return (self.grid - 3) >> len(self.decoder_channels)


@dataclass(frozen=True)
class LossConfig:
    """Terms of the loss (paper eq. 4 and appendix A.0.2).

    ``total = regression_weight·regression_scale·NLL + reconstruction_weight·reconstruction_scale·R
    + kl_weight·kl_scale·KL`` per sample, averaged over the batch. The paper's
    scale multipliers are 2 (regression) and 20 (KL), its weights 10 and 1.

    Parameters
    ----------
    reconstruction : {'style-vgg19', 'two-point', 'bce'}
        Reconstruction loss R.
    reconstruction_scale : float or None
        Multiplier of R; None takes the loss's own default (:data:`DEFAULT_RECONSTRUCTION_SCALE`).
    vgg_weights : str or None
        Local VGG19 state dict for ``style-vgg19``; None looks in the user cache
        (see :func:`vaereg_core.model.vgg.default_weights_path`).
    style_slices : int or None
        Slices per axis drawn at random each step for the style loss; None uses all.
    two_point_window : int or None
        Largest lag (voxels) per axis compared by the two-point loss; None compares all lags.
    regression_beta : float
        β of the regression term's β-NLL (Seitzer et al., ICLR 2022): each sample's
        Gaussian NLL weighted by its detached predicted variance to the power β.
        The paper's plain NLL (β = 0) made training unstable here: the 1/σ² factor
        of the mean's gradient let the prediction's spread collapse and recover
        over and over (Reg-only network, C11, lr 5e-4: validation MSE 0.06 → 1.2
        → 0.18 in standardised units within 100 steps), while β = 1 trains as
        smoothly as a squared error (0.07 → 0.015 → 0.04) and still learns σ.
    volume_fraction_weight : float
        Weight of a (φ̂ - φ)² term added to the reconstruction loss per sample,
        φ̂ the mean decoded probability. The style loss's Gram matrices barely
        see the volume fraction: a C11 decoder trained with it alone drew the
        right morphologies at φ 0.50-0.59 for structures of 0.2-0.8 (mean
        error 0.17), and the stiffness of a two-phase structure follows φ
        first. 0 (the paper's loss) leaves it out.
    """

    reconstruction: str = "style-vgg19"
    reconstruction_weight: float = 1.0
    reconstruction_scale: float | None = None
    regression_weight: float = 10.0
    regression_scale: float = 2.0
    kl_weight: float = 1.0
    kl_scale: float = 20.0
    vgg_weights: str | None = None
    style_slices: int | None = None
    two_point_window: int | None = 12
    regression_beta: float = 1.0
    volume_fraction_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.reconstruction not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"reconstruction must be one of {RECONSTRUCTION_LOSSES}, got {self.reconstruction!r}")


# Scales that bring each reconstruction loss to the order of magnitude of the
# other terms at the start of training (measured on the paper config, 51³).
DEFAULT_RECONSTRUCTION_SCALE = {"style-vgg19": 1.0, "two-point": 1.0, "bce": 100.0}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and data settings (appendix A.0.2).

    Parameters
    ----------
    log_stiffness : bool
        Standardise log(C) rather than C (DESIGN.md section 4).
    subset : {'all', 'two-morphology'}
        Which structures of the dataset to use.
    split_seed : int or None
        Override the dataset's recorded split seed (repeated random splits).
    max_train_samples : int or None
        Use only the first samples of the training split (quick runs).
    epoch_samples : int or None
        Samples per epoch, a fresh random draw of the training split each epoch
        (None: the whole split), so that big datasets validate and checkpoint often.
    max_val_samples : int or None
        Validate on the first samples of the validation split only.
    stage : {'joint', 'decoder', 'generative'}
        ``joint``: all networks learn together. The finishing stages start from
        a whole trained model given as ``--init-from`` and keep its property
        scaler; only some networks learn (:data:`STAGE_LEARNERS`).
        ``decoder``: the decoder alone, e.g. with the style loss, whose
        gradients create texture the two-point loss's cannot. ``generative``:
        encoder, decoder and generator, with the trunk and regressor frozen,
        so the latent space can be relearnt (a collapsed posterior) without
        touching the forward predictions.
    channels_last : bool
        Use the channels_last_3d memory format (1.4x faster training steps on CPU,
        benchmarks/bench_model.py).
    symmetry_augmentation : bool
        Show each training structure under a random cube symmetry with its
        constants permuted to match (:class:`~vaereg_core.model.training.SymmetryAugmented`).
    """

    seed: int = 0
    learning_rate: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 8
    max_epochs: int = 200
    patience: int = 10
    log_stiffness: bool = True
    subset: str = "all"
    split_seed: int | None = None
    max_train_samples: int | None = None
    epoch_samples: int | None = None
    max_val_samples: int | None = None
    stage: str = "joint"
    num_workers: int = 0
    channels_last: bool = True
    symmetry_augmentation: bool = False

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        """Build from a dict; a ``base`` key names the configuration it overrides."""
        d = dict(d)
        base_name = d.pop("base", None)
        base = named_config(base_name) if base_name is not None else cls()
        unknown = set(d) - {"model", "loss", "train", "name"}
        if unknown:
            raise ValueError(f"unknown configuration sections: {', '.join(sorted(unknown))}")
        return cls(
            model=_override(base.model, d.get("model", {})),
            loss=_override(base.loss, d.get("loss", {})),
            train=_override(base.train, d.get("train", {})),
            name=d.get("name", f"{base_name}+custom" if base_name else base.name),
        )


def _override(obj: Any, values: dict[str, Any]) -> Any:
    """A copy of dataclass ``obj`` with ``values`` replaced (lists become tuples)."""
    if not isinstance(values, dict):
        raise ValueError(f"{type(obj).__name__} settings must be a JSON object, got {values!r}")
    names = {f.name for f in fields(obj)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {type(obj).__name__} settings: {', '.join(sorted(unknown))}")
    return dataclasses.replace(obj, **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _named() -> dict[str, RunConfig]:
    paper = RunConfig(name="paper")
    tiny_model = ModelConfig(
        grid=19, trunk_channels=(4, 8, 8), trunk_dense=32, head_dense=16, latent_dim=4,
        decoder_dense=(8, 16), decoder_channels=(8, 4),
    )
    return {
        "paper": paper,
        "paper-gaussian": dataclasses.replace(paper, name="paper-gaussian", model=dataclasses.replace(paper.model, prior="gaussian")),
        "paper-6": dataclasses.replace(paper, name="paper-6", model=dataclasses.replace(paper.model, properties=ALL_PROPERTIES)),
        "paper-cpu": dataclasses.replace(paper, name="paper-cpu", loss=dataclasses.replace(paper.loss, reconstruction="two-point")),
        "vae": dataclasses.replace(
            paper,
            name="vae",
            model=dataclasses.replace(paper.model, prior="standard"),
            loss=dataclasses.replace(paper.loss, reconstruction="two-point", regression_weight=0.0),
        ),
        "tiny": RunConfig(
            name="tiny",
            model=tiny_model,
            loss=LossConfig(reconstruction="two-point", two_point_window=4),
            train=TrainConfig(batch_size=4, max_epochs=5, patience=3),
        ),
    }


NAMED_CONFIGS: dict[str, RunConfig] = _named()


def named_config(name: str) -> RunConfig:
    """One of :data:`NAMED_CONFIGS`."""
    try:
        return NAMED_CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown configuration {name!r}; named ones: {', '.join(NAMED_CONFIGS)}") from None


def load_config(spec: str | os.PathLike) -> RunConfig:
    """A named configuration, or a JSON file (which may name a ``base``)."""
    if isinstance(spec, str) and spec in NAMED_CONFIGS:
        return NAMED_CONFIGS[spec]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"configuration {str(spec)!r} is neither a named one ({', '.join(NAMED_CONFIGS)}) nor a file")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: a configuration is a JSON object, got {type(d).__name__}")
    return RunConfig.from_dict(d)
