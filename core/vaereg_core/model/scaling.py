"""Standardisation of the properties: GPa <-> the model's units (log-stiffness, zero mean, unit variance).

C11 spans about 5-110 GPa on our recipe; the logarithm makes relative errors
uniform over that range, which is what MAPE measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class PropertyScaler:
    """``y = (f(c) - mean) / std`` with ``f = log`` or the identity, per property.

    Parameters
    ----------
    mean, std : tuple of float
        Statistics of f(c) on the training split.
    log : bool
        Whether f is the natural logarithm.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    log: bool = True

    @classmethod
    def fit(cls, values: np.ndarray, log: bool = True) -> "PropertyScaler":
        """Statistics of (N, P) values in GPa."""
        f = np.log(values) if log else np.asarray(values, np.float64)
        std = np.maximum(f.std(0), 1e-8)
        return cls(tuple(map(float, f.mean(0))), tuple(map(float, std)), log)

    def to_dict(self) -> dict:
        return {"transform": "log" if self.log else "none", "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "PropertyScaler":
        return cls(tuple(d["mean"]), tuple(d["std"]), d["transform"] == "log")

    def transform(self, values: Tensor) -> Tensor:
        """GPa -> standardised (torch, differentiable)."""
        mean, std = self._stats(values)
        f = torch.log(values) if self.log else values
        return (f - mean) / std

    def inverse(self, y_mean: Tensor, y_log_var: Tensor) -> tuple[Tensor, Tensor]:
        """Predictive (point estimate, standard deviation) in GPa from a Gaussian in standardised units.

        With the log transform the predictive distribution is log-normal; the
        point estimate is its median exp(m) (it minimises the expected relative
        error), the spread its standard deviation.
        """
        mean, std = self._stats(y_mean)
        m = y_mean * std + mean
        s2 = torch.exp(y_log_var) * std**2
        if not self.log:
            return m, torch.sqrt(s2)
        return torch.exp(m), torch.exp(m + s2 / 2) * torch.sqrt(torch.expm1(s2))

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        kw = {"dtype": like.dtype, "device": like.device}
        return torch.tensor(self.mean, **kw), torch.tensor(self.std, **kw)
