"""A regression head on the concatenated trunk features of several networks: a forward-ensemble member.

Each shipped network ends in a small head on its own 2,048 trunk features,
trained on the identity copy of each training structure. This member is the
same kind of head — one hidden layer for the mean and one for the log
variance of log C — on the features of *all* listed networks side by side,
trained with symmetry augmentation: every structure's symmetric copies, the
constants permuted as the axes are. It is a stacker: trained on structures
the networks never saw (the validation split, cross-fitted; the networks'
features of their own training structures are over-fitted and would teach it
to trust them too much). It costs no extra convolution at prediction time,
since the ensemble runs the networks anyway, and it learns what the networks'
features say together rather than averaging what each head says alone.

It is stored as plain arrays in an ``.npz`` read with ``allow_pickle=False``
and evaluated with NumPy, so shipping it runs no code; it is bound to the
checksums of the networks whose features it reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaereg_core.errors import ModelFileError
from vaereg_core.model.array_files import read_array_file

FORMAT = "vaereg-feature-head"
VERSION = 1
_LAYERS = ("mean_w1", "mean_b1", "mean_w2", "mean_b2", "var_w1", "var_b1", "var_w2", "var_b2")


@dataclass(frozen=True)
class FeatureHead:
    """Mean and log-variance MLPs (one ReLU hidden layer each) from standardised features to standardised log C.

    Attributes
    ----------
    names : tuple of str
        The constants, in output order.
    sources : tuple of str
        Weights checksums of the networks whose trunk features are concatenated, in order.
    x_mean, x_scale : (D,) arrays
        Feature standardisation.
    y_mean, y_scale : (P,) arrays
        Output standardisation of log C.
    layers : dict of arrays
        ``mean_w1`` (D, H), ``mean_b1`` (H,), ``mean_w2`` (H, P), ``mean_b2`` (P,) and the same for ``var_``.
    """

    names: tuple[str, ...]
    sources: tuple[str, ...]
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray
    layers: dict

    def predict_log(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian of log C, (mean, variance) each (..., P), for features (..., D).

        >>> head = FeatureHead.untrained(("C11",), ("abc",), features=3, hidden=2)
        >>> mean, var = head.predict_log(np.ones((4, 3)))
        >>> mean.shape, bool(np.all(var > 0))
        ((4, 1), True)
        """
        x = ((np.asarray(features, np.float64) - self.x_mean) / self.x_scale).reshape(-1, self.x_mean.size)
        w = self.layers
        mean = np.maximum(x @ w["mean_w1"] + w["mean_b1"], 0.0) @ w["mean_w2"] + w["mean_b2"]
        log_var = np.maximum(x @ w["var_w1"] + w["var_b1"], 0.0) @ w["var_w2"] + w["var_b2"]
        shape = (*np.shape(features)[:-1], len(self.names))
        return (mean * self.y_scale + self.y_mean).reshape(shape), (np.exp(log_var) * self.y_scale**2).reshape(shape)

    @classmethod
    def untrained(cls, names: tuple[str, ...], sources: tuple[str, ...], *, features: int, hidden: int, seed: int = 0) -> "FeatureHead":
        """A randomly initialised head (for tests and examples; :func:`fit_feature_head` trains its own)."""
        rng = np.random.default_rng(seed)
        p = len(names)

        def glorot(a: int, b: int) -> np.ndarray:
            return rng.uniform(-1, 1, (a, b)) * np.sqrt(6.0 / (a + b))

        layers = {}
        for kind in ("mean", "var"):
            layers |= {f"{kind}_w1": glorot(features, hidden), f"{kind}_b1": np.zeros(hidden),
                       f"{kind}_w2": glorot(hidden, p), f"{kind}_b2": np.zeros(p)}
        return cls(tuple(names), tuple(sources), np.zeros(features), np.ones(features), np.zeros(p), np.ones(p), layers)

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically as an ``.npz`` of arrays."""
        from vaereg_core.atomic_files import atomic_paths

        path = Path(path)
        arrays = {"format": np.array(FORMAT), "version": np.array(VERSION), "names": np.array(self.names),
                  "sources": np.array(self.sources), "x_mean": self.x_mean, "x_scale": self.x_scale,
                  "y_mean": self.y_mean, "y_scale": self.y_scale, **{k: np.asarray(self.layers[k], np.float32) for k in _LAYERS}}
        with atomic_paths(path) as (temp,):
            np.savez_compressed(temp, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureHead":
        """Read a file written by :meth:`save`; a clear error for anything else."""
        def build(f) -> "FeatureHead":
            return cls(tuple(str(n) for n in f["names"]), tuple(str(s) for s in f["sources"]),
                       *(f[k].astype(np.float64) for k in ("x_mean", "x_scale", "y_mean", "y_scale")),
                       {k: f[k].astype(np.float64) for k in _LAYERS})

        path = Path(path)
        head = read_array_file(path, FORMAT, VERSION, "feature-head", build)
        d, p, w = head.x_mean.size, len(head.names), head.layers
        expected = {}
        for kind in ("mean", "var"):
            h = w[f"{kind}_b1"].size
            expected |= {f"{kind}_w1": (d, h), f"{kind}_b1": (h,), f"{kind}_w2": (h, p), f"{kind}_b2": (p,)}
        if (any(w[k].shape != s for k, s in expected.items()) or head.x_scale.shape != (d,) or head.y_mean.shape != (p,)
                or head.y_scale.shape != (p,) or not all(np.all(np.isfinite(a)) for a in (*w.values(), head.x_mean, head.x_scale))
                or np.any(head.x_scale <= 0) or np.any(head.y_scale <= 0)):
            raise ModelFileError(path, "feature-head arrays have inconsistent shapes or non-finite values")
        return head


def fit_feature_head(
    features: np.ndarray,
    log_targets: np.ndarray,
    names: tuple[str, ...],
    sources: tuple[str, ...],
    *,
    val_score=None,
    hidden: int = 256,
    epochs: int = 20,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    dropout: float = 0.2,
    batch_size: int = 256,
    seed: int = 0,
) -> tuple[FeatureHead, dict]:
    """Train a head by Gaussian negative log-likelihood on every copy (N, T, D) -> log C (N, T, P), AdamW, cosine rate.

    ``val_score(head)`` returns a number to minimise on held-out structures
    (e.g. their symmetry-averaged MAPE); the epoch with the lowest is kept.
    Without it the last epoch's head is returned. Training stops at an epoch
    whose weights overflow, keeping the best before it (ValueError if the
    first does). Deterministic for a seed.
    Returns the head and a training log.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    x = features.reshape(-1, features.shape[-1]).astype(np.float32)
    y = log_targets.reshape(-1, log_targets.shape[-1]).astype(np.float64)
    x_mean, x_scale = x.mean(0, dtype=np.float64), x.std(0, dtype=np.float64) + 1e-3
    y_mean, y_scale = y.mean(0), y.std(0)
    inputs = torch.tensor((x - x_mean) / x_scale, dtype=torch.float32)
    outputs = torch.tensor((y - y_mean) / y_scale, dtype=torch.float32)
    p = y.shape[1]
    mean_net = nn.Sequential(nn.Dropout(dropout), nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, p))
    var_net = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, p))
    parameters = [*mean_net.parameters(), *var_net.parameters()]
    optimiser = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)

    def snapshot() -> FeatureHead:
        layers = {}
        for kind, net in (("mean", mean_net), ("var", var_net)):
            linear = [m for m in net if isinstance(m, nn.Linear)]
            layers |= {f"{kind}_w1": linear[0].weight.detach().double().numpy().T.copy(), f"{kind}_b1": linear[0].bias.detach().double().numpy().copy(),
                       f"{kind}_w2": linear[1].weight.detach().double().numpy().T.copy(), f"{kind}_b2": linear[1].bias.detach().double().numpy().copy()}
        return FeatureHead(tuple(names), tuple(sources), x_mean, x_scale, y_mean, y_scale, layers)

    best, log = (np.inf, None, -1), []
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        mean_net.train()
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(inputs), batch_size):
            rows = order[start : start + batch_size]
            mean, log_var = mean_net(inputs[rows]), var_net(inputs[rows])
            loss = (0.5 * (log_var + (outputs[rows] - mean) ** 2 / log_var.exp())).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
        mean_net.eval()
        head = snapshot()
        if not all(np.isfinite(w).all() for w in head.layers.values()):
            log.append({"epoch": epoch + 1, "diverged": True})
            break  # the weights overflowed (steps too large for these data): keep the best epoch before
        score = float(val_score(head)) if val_score is not None else -float(epoch)
        log.append({"epoch": epoch + 1, "train_nll": float(loss.detach()), "val_score": score if val_score is not None else None})
        if score < best[0]:
            best = (score, head, epoch + 1)
    if best[1] is None:
        raise ValueError(f"the feature head diverged in its first epoch at learning rate {learning_rate}: lower it")
    return best[1], {"epochs": log, "best_epoch": best[2], "best_val_score": best[0] if val_score is not None else None}
