"""Target property vectors: parsing, checking, and flagging extrapolation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from vaereg_core.errors import VaeRegError


class TargetError(VaeRegError):
    """A target names unknown properties, has no value, or a non-finite one."""


@dataclass(frozen=True)
class Target:
    """Target values (GPa) for some of a model's properties; the others are free.

    Attributes
    ----------
    names : tuple of str
        The model's property names, in its order.
    values : (P,) array
        Target values; NaN where the property is left free.
    extrapolated : tuple of str
        Properties whose target lies outside the training data's range.
    """

    names: tuple[str, ...]
    values: np.ndarray
    extrapolated: tuple[str, ...] = ()

    @property
    def mask(self) -> np.ndarray:
        """True for the properties that have a target."""
        return ~np.isnan(self.values)

    def as_dict(self) -> dict[str, float]:
        """``{name: value}`` for the constrained properties only."""
        return {n: float(v) for n, v in zip(self.names, self.values) if not math.isnan(v)}

    def relative_error(self, predicted: np.ndarray) -> np.ndarray:
        """Mean absolute relative error over the constrained properties, per row of ``predicted`` (…, P)."""
        p = np.asarray(predicted, dtype=np.float64)[..., self.mask]
        t = self.values[self.mask]
        return np.mean(np.abs(p - t) / np.abs(t), axis=-1)

    def __str__(self) -> str:
        return ", ".join(f"{n}={v:g} GPa" for n, v in self.as_dict().items())


def parse_target(
    spec: Mapping[str, float] | Sequence[str] | str,
    names: Sequence[str],
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> Target:
    """Build a :class:`Target` from ``{"C11": 35}``, ``["C11=35", "C22=30"]`` or ``"C11=35,C22=30"``.

    Parameters
    ----------
    spec : mapping, sequence of "NAME=VALUE" or comma-separated string
        The constrained properties, in GPa.
    names : sequence of str
        The model's property names.
    ranges : mapping name -> (min, max), optional
        The training data's range of each property; targets outside are
        flagged in ``Target.extrapolated`` (still allowed).

    Raises
    ------
    TargetError
        Unknown name, repeated name, no target at all, unparsable, NaN/inf or
        non-positive value.

    Examples
    --------
    >>> t = parse_target("C11=35", ["C11", "C22"], {"C11": (5, 110), "C22": (5, 110)})
    >>> t.as_dict(), t.extrapolated
    ({'C11': 35.0}, ())
    >>> parse_target({"C11": 200}, ["C11"], {"C11": (5, 110)}).extrapolated
    ('C11',)
    """
    if isinstance(spec, str):
        spec = [s for s in spec.replace(";", ",").split(",") if s.strip()]
    if not isinstance(spec, Mapping):
        pairs = {}
        for item in spec:
            if "=" not in item:
                raise TargetError(f"target {item!r} must look like NAME=VALUE, e.g. C11=35")
            name, value = item.split("=", 1)
            name = name.strip()
            if name in pairs:
                raise TargetError(f"property {name} is given twice")
            try:
                pairs[name] = float(value)
            except ValueError:
                raise TargetError(f"target value {value.strip()!r} for {name} is not a number") from None
        spec = pairs
    names = tuple(names)
    unknown = [n for n in spec if n not in names]
    if unknown:
        raise TargetError(f"unknown properties {', '.join(unknown)}: this model predicts {', '.join(names)}")
    if not spec:
        raise TargetError(f"no target given: set at least one of {', '.join(names)}")
    values = np.full(len(names), np.nan)
    for name, value in spec.items():
        value = float(value)
        if not math.isfinite(value):
            raise TargetError(f"target {name} must be a finite number, got {value}")
        if value <= 0:
            raise TargetError(f"target {name} must be a positive stiffness in GPa, got {value}")
        values[names.index(name)] = value
    extrapolated = tuple(
        n for n, v in zip(names, values) if ranges and n in ranges and not math.isnan(v) and not ranges[n][0] <= v <= ranges[n][1]
    )
    return Target(names, values, extrapolated)
