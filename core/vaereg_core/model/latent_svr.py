"""Support-vector regression of log-stiffness on a generative model's latent means: a forward-ensemble member.

The paper's "VAE + SVR" row: inputs standardised, an RBF-kernel SVR per
constant on log C (C = 10, ε = 0.01, γ = 1 / (D · var), scikit-learn's
``gamma="scale"``), trained on the training split's posterior means. On the
default model it is the most accurate single forward model for the diagonal
constants (docs/model-card.md). It is stored as plain arrays in an ``.npz``
file read with ``allow_pickle=False`` — support vectors, dual coefficients,
intercepts — and evaluated here with NumPy, so shipping it runs no code and
needs no scikit-learn pickle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaereg_core.errors import ModelFileError
from vaereg_core.model.array_files import read_array_file

FORMAT = "vaereg-latent-svr"
VERSION = 1


@dataclass(frozen=True)
class LatentSVR:
    """One RBF SVR per constant on standardised latent means; predicts log C.

    Attributes
    ----------
    names : tuple of str
        The constants, in output order.
    model_checksum : str
        Weights checksum of the model whose encoder made the latents.
    z_mean, z_scale : (D,) arrays
        Input standardisation.
    support, dual : tuple of arrays
        Per constant: support vectors (k, D) (standardised inputs) and their dual coefficients (k,).
    intercept, gamma : (P,) arrays
    residual_var : (P,) array
        Variance of the log residual on held-out structures: the member's own ±.
    """

    names: tuple[str, ...]
    model_checksum: str
    z_mean: np.ndarray
    z_scale: np.ndarray
    support: tuple[np.ndarray, ...]
    dual: tuple[np.ndarray, ...]
    intercept: np.ndarray
    gamma: np.ndarray
    residual_var: np.ndarray

    @classmethod
    def fit(cls, z: np.ndarray, truth: np.ndarray, names: tuple[str, ...], model_checksum: str, *, c: float = 10.0, epsilon: float = 0.01) -> "LatentSVR":
        """Fit on latent means (N, D) and constants (N, P) in GPa; ``residual_var`` starts at the training residual's."""
        from sklearn.svm import SVR

        mean, scale = z.mean(0), np.maximum(z.std(0), 1e-12)
        x = (z - mean) / scale
        gamma = 1.0 / (x.shape[1] * x.var())
        support, dual, intercept, residual = [], [], [], []
        for p in range(truth.shape[1]):
            svr = SVR(C=c, epsilon=epsilon, gamma=gamma).fit(x, np.log(truth[:, p]))
            support.append(np.asarray(svr.support_vectors_, np.float64))
            dual.append(np.asarray(svr.dual_coef_[0], np.float64))
            intercept.append(float(svr.intercept_[0]))
            residual.append(float(np.var(np.log(truth[:, p]) - svr.predict(x))))
        return cls(tuple(names), model_checksum, mean, scale, tuple(support), tuple(dual), np.array(intercept),
                   np.full(len(names), gamma), np.array(residual))

    def predict_log(self, z: np.ndarray) -> np.ndarray:
        """log C (..., P) for latent means (..., D)."""
        x = ((np.asarray(z, np.float64) - self.z_mean) / self.z_scale).reshape(-1, self.z_mean.size)
        out = np.empty((len(x), len(self.names)))
        squared = (x**2).sum(1)
        for p, (sv, a) in enumerate(zip(self.support, self.dual)):
            distance = squared[:, None] + (sv**2).sum(1)[None] - 2 * x @ sv.T
            out[:, p] = np.exp(-self.gamma[p] * np.maximum(distance, 0.0)) @ a + self.intercept[p]
        return out.reshape(*np.shape(z)[:-1], len(self.names))

    def with_residual_var(self, residual_var: np.ndarray) -> "LatentSVR":
        """A copy whose own ± is ``residual_var`` (measured on held-out structures)."""
        return LatentSVR(self.names, self.model_checksum, self.z_mean, self.z_scale, self.support, self.dual,
                         self.intercept, self.gamma, np.asarray(residual_var, np.float64))

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically as an ``.npz`` of arrays."""
        from vaereg_core.voxel_io import atomic_paths

        path = Path(path)
        arrays = {"format": np.array(FORMAT), "version": np.array(VERSION), "names": np.array(self.names),
                  "model_checksum": np.array(self.model_checksum), "z_mean": self.z_mean, "z_scale": self.z_scale,
                  "intercept": self.intercept, "gamma": self.gamma, "residual_var": self.residual_var}
        for p, (sv, a) in enumerate(zip(self.support, self.dual)):
            arrays[f"support_{p}"], arrays[f"dual_{p}"] = sv, a
        with atomic_paths(path, overwrite=True) as (temp,):
            np.savez_compressed(temp, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatentSVR":
        """Read a file written by :meth:`save`; a clear error for anything else."""
        def build(f) -> "LatentSVR":
            names = tuple(str(n) for n in f["names"])
            support = tuple(f[f"support_{p}"].astype(np.float64) for p in range(len(names)))
            dual = tuple(f[f"dual_{p}"].astype(np.float64) for p in range(len(names)))
            return cls(names, str(f["model_checksum"]), f["z_mean"], f["z_scale"], support, dual,
                       f["intercept"], f["gamma"], f["residual_var"])

        path = Path(path)
        svr = read_array_file(path, FORMAT, VERSION, "latent-SVR", build)
        dim = svr.z_mean.size
        if any(sv.ndim != 2 or sv.shape[1] != dim or sv.shape[0] != a.size for sv, a in zip(svr.support, svr.dual)):
            raise ModelFileError(path, "latent-SVR arrays have inconsistent shapes")
        return svr
