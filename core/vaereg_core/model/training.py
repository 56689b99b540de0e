"""Training loop: Adam, early stopping on the validation loss, resumable, logged.

A run folder holds::

    config.json       the RunConfig and the data it was trained on
    last.pt           training state after the latest epoch (resume from here)
    model.pt          the best model so far (lowest validation loss), a model file
    metrics.csv/json  one row per epoch: loss terms (train, val), validation MAPE per property
    loss_curves.png

Every epoch draws its randomness (shuffling, reparameterisation noise) from
seeds derived from (run seed, epoch), and the state saved after each epoch is
complete, so an interrupted run resumed from ``last.pt`` ends with the same
weights as an uninterrupted one (on the same device and software).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset

from vaereg_core.atomic_files import atomic_paths
from vaereg_core.dataset.table import read_table
from vaereg_core.device import resolve_device
from vaereg_core.errors import VaeRegError
from vaereg_core.model.checkpoint import MODEL_FILE, KINDS, ModelFile, load_model_file, save_model
from vaereg_core.model.config import STAGE_LEARNERS, RunConfig
from vaereg_core.model.losses import LossTerms, VAERegLoss
from vaereg_core.model.networks import VAERegression
from vaereg_core.model.scaling import PropertyScaler
from vaereg_core.physics.phases import Material
from vaereg_core.symmetry import symmetries_for

STATE_FILE = "last.pt"
TERMS = ("total", "regression", "reconstruction", "kl")


class RunFolderError(VaeRegError):
    """A run folder is missing, incomplete, or would be overwritten."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        super().__init__(f"{self.path}: {reason}")


class InMemory(Dataset):
    """Keeps every structure of a dataset in memory as uint8 after its first read.

    Regenerating a 51³ structure from the recipe costs tens of milliseconds, an
    epoch of the paper's dataset minutes; holding them costs 133 kB each.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i not in self.cache:
            x, y = self.dataset[i]
            self.cache[i] = (x.to(torch.uint8), y)
        x, y = self.cache[i]
        return x.float(), y


class SymmetryAugmented(Dataset):
    """Each item under a random one of the cube's symmetries, its constants permuted to match.

    The draw is a function of (seed, epoch, index), so an epoch is the same
    after a resume; set :attr:`epoch` before each epoch. Only the symmetries
    that map the constants onto themselves are drawn (all 48 for three or six
    constants, 16 for C11 alone).
    """

    def __init__(self, dataset: Dataset, names: tuple[str, ...], seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0
        self.symmetries = symmetries_for(names, "all")
        self.sources = [list(s.constant_sources(names)) for s in self.symmetries]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.dataset[i]
        pick = int(np.random.default_rng((self.seed, self.epoch, i)).integers(len(self.symmetries)))
        moved = self.symmetries[pick].apply(x.numpy())  # x is (1, n, n, n): the last three axes are x, y, z
        return torch.from_numpy(np.ascontiguousarray(moved)), y[self.sources[pick]]


def split_datasets(config: RunConfig, data: str | os.PathLike) -> dict[str, Dataset]:
    """Train / val / test datasets of a dataset file, restricted as the configuration says."""
    from vaereg_core.dataset import MicrostructureDataset

    t = config.train
    sets = {
        split: MicrostructureDataset(data, split, config.model.properties, subset=t.subset, split_seed=t.split_seed)
        for split in ("train", "val", "test")
    }
    if t.max_train_samples is not None:
        sets["train"] = Subset(sets["train"], range(min(t.max_train_samples, len(sets["train"]))))
    if t.max_val_samples is not None:
        sets["val"] = Subset(sets["val"], range(min(t.max_val_samples, len(sets["val"]))))
    return sets


def dataset_properties(dataset: Dataset) -> np.ndarray:
    """(N, P) properties in GPa of a dataset, without reading voxels when it can."""
    if isinstance(dataset, Subset):
        return dataset_properties(dataset.dataset)[np.asarray(dataset.indices)]
    if isinstance(dataset, InMemory):
        return dataset_properties(dataset.dataset)
    props = getattr(dataset, "properties", None)
    if props is not None:
        return np.asarray(props, dtype=np.float64)
    return np.stack([np.asarray(dataset[i][1], dtype=np.float64) for i in range(len(dataset))])


def compute_loss(
    network: nn.Module, loss: VAERegLoss, x: torch.Tensor, y: torch.Tensor, regression_beta: float | None = None
) -> LossTerms:
    """Loss terms of a batch (y standardised); the Reg-only network has the regression term alone.

    ``regression_beta`` overrides the configured β of the regression term.
    """
    if isinstance(network, VAERegression):
        return loss(network(x), x, y, regression_beta)
    c = loss.config
    regression = loss.regression(*network(x), y, regression_beta)
    zero = torch.zeros((), device=x.device)
    return LossTerms(c.regression_weight * c.regression_scale * regression, regression.detach(), zero, zero)


@dataclass
class EpochRecord:
    """What one epoch measured (loss terms are batch means; MAPE in %)."""

    epoch: int
    train: dict[str, float]
    val: dict[str, float]
    val_mape: dict[str, float]
    seconds: float

    def row(self) -> dict[str, float]:
        row = {"epoch": self.epoch, "seconds": round(self.seconds, 3)}
        row.update({f"train_{k}": v for k, v in self.train.items()})
        row.update({f"val_{k}": v for k, v in self.val.items()})
        row.update({f"val_mape_{k}": v for k, v in self.val_mape.items()})
        return row


@dataclass
class TrainResult:
    """Outcome of :func:`train`."""

    run_dir: Path
    epochs: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    interrupted: bool

    @property
    def model_path(self) -> Path:
        return self.run_dir / MODEL_FILE


def copy_shared_layers(network: nn.Module, source: str | os.PathLike) -> list[str]:
    """Start ``network`` from the trunk and regressor of a trained model file (a warm start).

    A Reg-only network learns C11 within a few epochs; a VAE-Regression
    started from its trunk keeps features that carry the property while the
    encoder and decoder learn, instead of finding them against the
    reconstruction and KL terms from a random start. Returns the parameter
    names copied.
    """
    model = load_model_file(source)
    if model.config.model.properties != network.config.properties or model.config.model.grid != network.config.grid:
        raise RunFolderError(source, "--init-from needs a model of the same properties and grid")
    own = network.state_dict()
    shared = {k: v for k, v in model.network.state_dict().items() if k.split(".")[0] in ("trunk", "regressor")}
    if not shared or any(k not in own or own[k].shape != v.shape for k, v in shared.items()):
        raise RunFolderError(source, "--init-from needs a model whose trunk and regressor have this configuration's sizes")
    network.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in shared.items()}})
    return sorted(shared)


def freeze_for_stage(network: nn.Module, source: str | os.PathLike, stage: str) -> ModelFile:
    """Load every weight of a trained model into ``network`` and let only the stage's networks learn.

    Returns the source model file, whose property scaler and ranges the run
    must keep: its regressor and generator work in that scaler's units.
    """
    model = load_model_file(source)
    if not isinstance(model.network, VAERegression) or model.config.model != network.config:
        raise RunFolderError(source, f"the {stage} stage needs --init-from a VAE-Regression model of this configuration's model section")
    network.load_state_dict({k: v.float() for k, v in model.network.state_dict().items()})
    learners = STAGE_LEARNERS[stage]
    for name, parameter in network.named_parameters():
        parameter.requires_grad_(name.split(".")[0] in learners)
    return model


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + stream) % 2**63


class Trainer:
    """One training run in a run folder (see module docstring).

    Parameters
    ----------
    config : RunConfig
    datasets : dict
        ``train`` and ``val`` datasets of (voxels (1, n, n, n), properties (P,) in GPa).
    run_dir : path-like
    device : str
        ``auto``, ``cuda``, ``mps`` or ``cpu``.
    kind : {'vae-regression', 'regression-only'}
    metadata : dict
        Provenance stored in the model file (e.g. the dataset path).
    init_from : path-like, optional
        Model file whose trunk and regressor start the network (:func:`copy_shared_layers`);
        in a finishing stage, the whole model whose networks it trains
        (:func:`freeze_for_stage`), needed again when resuming.
    progress : bool
        Show a tqdm bar per epoch on stderr.
    """

    def __init__(
        self,
        config: RunConfig,
        datasets: dict[str, Dataset],
        run_dir: str | os.PathLike,
        *,
        device: str = "auto",
        kind: str = "vae-regression",
        metadata: dict | None = None,
        init_from: str | os.PathLike | None = None,
        progress: bool = True,
    ) -> None:
        self.config, self.kind, self.progress = config, kind, progress
        self.run_dir = Path(run_dir)
        self.device = resolve_device(device)
        self.train_set, self.val_set = InMemory(datasets["train"]), InMemory(datasets["val"])
        if len(self.train_set) == 0 or len(self.val_set) == 0:
            raise ValueError(f"empty split: {len(self.train_set)} training and {len(self.val_set)} validation samples")
        train_props = dataset_properties(self.train_set)
        self.scaler = PropertyScaler.fit(train_props, log=config.train.log_stiffness)
        names = config.model.properties
        self.ranges = {n: (float(train_props[:, j].min()), float(train_props[:, j].max())) for j, n in enumerate(names)}
        if config.train.symmetry_augmentation:
            self.train_set = SymmetryAugmented(self.train_set, config.model.properties, config.train.seed)
        self.metadata = dict(metadata or {})
        torch.manual_seed(config.train.seed)
        self.memory_format = torch.channels_last_3d if config.train.channels_last else torch.contiguous_format
        self.network = KINDS[kind](config.model)
        if config.train.stage != "joint":
            if init_from is None or kind != "vae-regression":
                raise ValueError(f"the {config.train.stage} stage trains part of a VAE-Regression model: give the model as init_from (--init-from)")
            source = freeze_for_stage(self.network, init_from, config.train.stage)
            self.scaler, self.ranges = source.scaler, dict(source.ranges)
        elif init_from is not None:
            copy_shared_layers(self.network, init_from)
        self.network = self.network.to(self.device, memory_format=self.memory_format)
        self.loss = VAERegLoss(config.loss).to(self.device)
        t = config.train
        learning = [p for p in self.network.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(learning, lr=t.learning_rate, betas=t.betas)
        self.epoch = 0
        self.best_val_loss = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.history: list[dict] = []

    # --- state -------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "kind": self.kind,
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["config"] != self.config.to_dict() or state["kind"] != self.kind:
            raise RunFolderError(self.run_dir, "the saved run has a different configuration; start a new run folder")
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.best_epoch, self.bad_epochs = state["epoch"], state["best_epoch"], state["bad_epochs"]
        self.best_val_loss, self.history = state["best_val_loss"], state["history"]

    def resume(self) -> None:
        """Continue from the run folder's ``last.pt``."""
        path = self.run_dir / STATE_FILE
        if not path.is_file():
            raise RunFolderError(self.run_dir, f"nothing to resume (no {STATE_FILE})")
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))

    def _save_state(self) -> None:
        with atomic_paths(self.run_dir / STATE_FILE) as (temp,):
            torch.save(self.state_dict(), temp)

    def model_file(self) -> ModelFile:
        meta = {**self.metadata, "epoch": self.epoch, "val_loss": self.best_val_loss, "torch": str(torch.__version__)}
        return ModelFile(self.network, self.config, self.scaler, self.ranges, meta)

    # --- epochs ------------------------------------------------------------

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        t = self.config.train
        generator = torch.Generator().manual_seed(_epoch_seed(t.seed, self.epoch, 1))
        sampler = None
        if shuffle and t.epoch_samples is not None:
            sampler = RandomSampler(dataset, num_samples=min(t.epoch_samples, len(dataset)), generator=generator)
        return DataLoader(
            dataset, batch_size=t.batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
            generator=generator, num_workers=t.num_workers,
        )

    def _batches(self, dataset: Dataset, shuffle: bool, desc: str):
        loader = self._loader(dataset, shuffle)
        if not self.progress:
            return loader
        from tqdm import tqdm

        return tqdm(loader, desc=desc, unit="batch", leave=False, file=sys.stderr, dynamic_ncols=True)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device).contiguous(memory_format=self.memory_format)

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training split; returns mean loss terms."""
        self.network.train()
        torch.manual_seed(_epoch_seed(self.config.train.seed, self.epoch, 2))
        if isinstance(self.train_set, SymmetryAugmented):
            self.train_set.epoch = self.epoch
        sums, n = dict.fromkeys(TERMS, 0.0), 0
        for x, y in self._batches(self.train_set, True, f"epoch {self.epoch + 1}"):
            x, y = self._to_device(x), self.scaler.transform(y.to(self.device))
            terms = compute_loss(self.network, self.loss, x, y)
            self.optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            self.optimizer.step()
            for k, v in zip(TERMS, terms):
                sums[k] += float(v.detach()) * len(x)
            n += len(x)
        return {k: v / n for k, v in sums.items()}

    @torch.no_grad()
    def validate(self) -> tuple[dict[str, float], dict[str, float]]:
        """Mean loss terms (evaluation mode: no sampling; regression term: the plain NLL) and MAPE (%) per property on the validation split."""
        self.network.eval()
        sums, n = dict.fromkeys(TERMS, 0.0), 0
        errors = []
        for x, c in self._batches(self.val_set, False, "validate"):
            x, c = self._to_device(x), c.to(self.device)
            # The plain NLL (β = 0), a proper score: the β-NLL's value rises as σ shrinks and
            # would stop a run that is still improving.
            terms = compute_loss(self.network, self.loss, x, self.scaler.transform(c), regression_beta=0.0)
            for k, v in zip(TERMS, terms):
                sums[k] += float(v.detach()) * len(x)
            n += len(x)
            mean, log_var = self.network.regressor(self.network.trunk(x))
            predicted, _ = self.scaler.inverse(mean, log_var)
            errors.append((torch.abs(predicted - c) / c).cpu())
        mape = 100 * torch.cat(errors).mean(0)
        return {k: v / n for k, v in sums.items()}, dict(zip(self.config.model.properties, map(float, mape)))

    def fit(self, callback: Callable[[EpochRecord], bool | None] | None = None) -> TrainResult:
        """Train until early stopping or ``max_epochs``; ``callback`` returning False stops after that epoch."""
        t = self.config.train
        self.run_dir.mkdir(parents=True, exist_ok=True)
        interrupted = False
        while self.epoch < t.max_epochs and self.bad_epochs < t.patience:
            start = time.perf_counter()
            train_terms = self.train_epoch()
            val_terms, val_mape = self.validate()
            self.epoch += 1
            record = EpochRecord(self.epoch, train_terms, val_terms, val_mape, time.perf_counter() - start)
            self.history.append(record.row())
            if val_terms["total"] < self.best_val_loss:
                self.best_val_loss, self.best_epoch, self.bad_epochs = val_terms["total"], self.epoch, 0
                save_model(self.run_dir / MODEL_FILE, self.model_file())
            else:
                self.bad_epochs += 1
            self._save_state()
            write_metrics(self.run_dir, self.history)
            if callback is not None and callback(record) is False:
                interrupted = True
                break
        plot_loss_curves(self.run_dir, self.history)
        return TrainResult(self.run_dir, self.epoch, self.best_epoch, self.best_val_loss, self.bad_epochs >= t.patience, interrupted)


def train(
    config: RunConfig,
    data: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    device: str = "auto",
    resume: bool = False,
    kind: str = "vae-regression",
    init_from: str | os.PathLike | None = None,
    progress: bool = True,
    callback: Callable[[EpochRecord], bool | None] | None = None,
) -> TrainResult:
    """Train a model on a dataset file into a run folder (``vaereg train``).

    Parameters
    ----------
    config : RunConfig
    data : path-like
        Dataset file (HDF5, DESIGN.md section 3).
    run_dir : path-like
        Output folder; must not hold a run unless ``resume``.
    resume : bool
        Continue the run in ``run_dir`` (same configuration and data).
    init_from : path-like, optional
        Model file whose trunk and regressor start the network (a warm start,
        :func:`copy_shared_layers`); recorded with the run.
    """
    run_dir = Path(run_dir)
    config_file = run_dir / "config.json"
    data = Path(data).resolve()
    record = {"config": config.to_dict(), "data": str(data), "kind": kind}
    if init_from is not None:
        init_from = Path(init_from).resolve()
        record["init_from"] = str(init_from)
    if resume:
        if not config_file.is_file():
            raise RunFolderError(run_dir, "nothing to resume (no config.json)")
        if json.loads(config_file.read_text()) != record:
            raise RunFolderError(run_dir, "resume needs the same configuration, data and model kind as the saved run")
    elif (run_dir / STATE_FILE).exists():
        raise RunFolderError(run_dir, "already holds a run; use --resume to continue it or choose another folder")
    trainer = Trainer(
        config, split_datasets(config, data), run_dir, device=device, kind=kind,
        metadata={"data": str(data), "split_seed": config.train.split_seed, "material": _material_of(data),
                  **({"init_from": record["init_from"]} if init_from else {})},
        # A resumed run has its weights in last.pt; a finishing stage still needs its source's scaler.
        init_from=init_from if not resume or config.train.stage != "joint" else None,
        progress=progress,
    )
    if resume:
        trainer.resume()
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(record, indent=2))
    return trainer.fit(callback)


def _material_of(data: Path) -> dict:
    """The phases a dataset file was computed with, as a model file records them."""
    return Material.from_record(read_table(data).solver).to_record()


def write_metrics(run_dir: Path, history: Sequence[dict]) -> None:
    """``metrics.csv`` and ``metrics.json`` from the epoch rows."""
    if not history:
        return
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    (run_dir / "metrics.json").write_text(json.dumps(list(history), indent=1))


def plot_loss_curves(run_dir: Path, history: Sequence[dict]) -> None:
    """``loss_curves.png``: each loss term, training and validation, against the epoch."""
    if not history:
        return
    from matplotlib.figure import Figure  # no pyplot: no global backend state in a GUI process

    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(4 * len(TERMS), 3.2), layout="constrained")
    axes = fig.subplots(1, len(TERMS))
    for ax, term in zip(axes, TERMS):
        for split, style in (("train", "-"), ("val", "--")):
            ax.plot(epochs, [row[f"{split}_{term}"] for row in history], style, label=split)
        ax.set(title=term, xlabel="epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.savefig(run_dir / "loss_curves.png", dpi=100)
