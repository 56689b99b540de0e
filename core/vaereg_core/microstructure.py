"""Synthetic two-phase microstructures: the recipe of DESIGN.md section 1.

A seeded uniform random field is smoothed with a periodic anisotropic Gaussian
filter (one of 4**3 = 64 filters, sigma in {1, 2, 4, 8} voxels per axis) and
thresholded at the quantile that gives the requested hard-phase volume
fraction. Each structure is fully determined by (master seed, field index,
filter index, volume fraction), so voxels are regenerated, never stored.

Examples
--------
>>> from vaereg_core.microstructure import generate, filter_sigma
>>> filter_sigma(3)
(1, 1, 8)
>>> x = generate(seed=0, field_index=0, filter_index=3, volume_fraction=0.4, size=21)
>>> x.shape, x.dtype, int(x.sum()) == round(0.4 * 21**3)
((21, 21, 21), dtype('uint8'), True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import product

import numpy as np

SIGMA_VALUES: tuple[int, ...] = (1, 2, 4, 8)
"""Standard deviations (voxels) that each axis of a filter can take."""

FILTERS: tuple[tuple[int, int, int], ...] = tuple(product(SIGMA_VALUES, repeat=3))
"""The 64 filters; filter index i is ``FILTERS[i]`` = (sigma_x, sigma_y, sigma_z)."""


def filter_sigma(filter_index: int) -> tuple[int, int, int]:
    """Return the (sigma_x, sigma_y, sigma_z) of a filter index in 0..63."""
    if not 0 <= filter_index < len(FILTERS):
        raise ValueError(f"filter index must be in 0..{len(FILTERS) - 1}, got {filter_index}")
    return FILTERS[filter_index]


def filter_index(sigma: tuple[int, int, int]) -> int:
    """Return the index of the filter with per-axis standard deviations ``sigma``."""
    try:
        return FILTERS.index(tuple(int(s) for s in sigma))
    except ValueError:
        raise ValueError(f"sigma must be three values from {SIGMA_VALUES}, got {sigma}") from None


def uniform_field(seed: int, field_index: int, size: int = 51) -> np.ndarray:
    """Uniform random field in [0, 1) on a ``size**3`` grid.

    The stream is PCG64 seeded by ``SeedSequence([seed, field_index])``, which
    NumPy guarantees to be the same on every machine and version.
    """
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, field_index])))
    return rng.random((size, size, size))


def periodic_gaussian_filter(values: np.ndarray, sigma: tuple[float, float, float]) -> np.ndarray:
    """Smooth a 3-D array with a periodic (circular) anisotropic Gaussian filter.

    The filter is applied in Fourier space with the transfer function
    ``exp(-2 pi^2 sum_i sigma_i^2 k_i^2)``, which is the Fourier series of the
    Gaussian summed over all periodic images: the result tiles space without
    seams.

    Parameters
    ----------
    values : (nx, ny, nz) ndarray
        The field to smooth.
    sigma : tuple of 3 floats
        Standard deviation of the Gaussian along each axis, in voxels.

    Returns
    -------
    ndarray of float64, same shape as ``values``.
    """
    shape = values.shape
    transfer = np.ones((shape[0], shape[1], shape[2] // 2 + 1))
    for axis, (n, s) in enumerate(zip(shape, sigma)):
        k = np.fft.rfftfreq(n) if axis == 2 else np.fft.fftfreq(n)
        factor = np.exp(-2.0 * np.pi**2 * s**2 * k**2)
        transfer *= factor.reshape([-1 if a == axis else 1 for a in range(3)])
    return np.fft.irfftn(np.fft.rfftn(values) * transfer, s=shape, axes=(0, 1, 2))


def threshold_to_volume_fraction(values: np.ndarray, volume_fraction: float) -> np.ndarray:
    """Binarise so that exactly ``round(volume_fraction * values.size)`` voxels are 1.

    The voxels with the largest values become the hard phase (1); ranking by a
    stable sort makes the result exact, with no tolerance on the fraction.
    """
    if not 0.0 <= volume_fraction <= 1.0:
        raise ValueError(f"volume fraction must be in [0, 1], got {volume_fraction}")
    n_hard = int(round(volume_fraction * values.size))
    order = np.argsort(values, axis=None, kind="stable")
    out = np.zeros(values.size, dtype=np.uint8)
    out[order[values.size - n_hard :]] = 1
    return out.reshape(values.shape)


def generate(
    *,
    seed: int,
    field_index: int,
    filter_index: int,
    volume_fraction: float,
    size: int = 51,
) -> np.ndarray:
    """Generate one binary microstructure of the recipe.

    Parameters
    ----------
    seed : int
        Master seed of the dataset.
    field_index : int
        Which random field (0..149 in the paper's dataset).
    filter_index : int
        Which of the 64 Gaussian filters (see :data:`FILTERS`).
    volume_fraction : float
        Requested hard-phase volume fraction in [0, 1].
    size : int
        Edge length of the cubic grid in voxels.

    Returns
    -------
    (size, size, size) ndarray of uint8, 1 = hard phase.
    """
    smooth = periodic_gaussian_filter(uniform_field(seed, field_index, size), filter_sigma(filter_index))
    return threshold_to_volume_fraction(smooth, volume_fraction)


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a dataset's structures.

    The volume fraction of structure (field, filter) is drawn uniformly from
    ``volume_fraction_range`` by a stream seeded with
    ``SeedSequence([seed, field_index, filter_index, 1])``.
    """

    seed: int = 20240
    n_fields: int = 150
    size: int = 51
    volume_fraction_range: tuple[float, float] = (0.2, 0.8)
    sigma_values: tuple[int, ...] = field(default=SIGMA_VALUES)

    def __post_init__(self) -> None:
        if tuple(self.sigma_values) != SIGMA_VALUES:
            raise ValueError(f"only the sigma values {SIGMA_VALUES} are supported")
        lo, hi = self.volume_fraction_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"volume fraction range must satisfy 0 <= lo <= hi <= 1, got {self.volume_fraction_range}")

    @property
    def n_structures(self) -> int:
        """Number of (field, filter) pairs: ``n_fields * 64``."""
        return self.n_fields * len(FILTERS)

    def indices(self, sample: int) -> tuple[int, int]:
        """(field index, filter index) of sample number ``sample`` (field-major order)."""
        if not 0 <= sample < self.n_structures:
            raise IndexError(f"sample {sample} outside 0..{self.n_structures - 1}")
        return divmod(sample, len(FILTERS))

    def volume_fraction(self, field_index: int, filter_index: int) -> float:
        """The volume fraction drawn for structure (field, filter)."""
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, field_index, filter_index, 1])))
        lo, hi = self.volume_fraction_range
        return float(lo + (hi - lo) * rng.random())

    def structure(self, field_index: int, filter_index: int) -> np.ndarray:
        """Regenerate structure (field, filter) of this recipe."""
        return generate(
            seed=self.seed,
            field_index=field_index,
            filter_index=filter_index,
            volume_fraction=self.volume_fraction(field_index, filter_index),
            size=self.size,
        )

    def to_dict(self) -> dict:
        """Plain-JSON form, stored with every dataset."""
        d = asdict(self)
        d["volume_fraction_range"] = list(self.volume_fraction_range)
        d["sigma_values"] = list(self.sigma_values)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """Inverse of :meth:`to_dict`."""
        return cls(
            seed=int(d["seed"]),
            n_fields=int(d["n_fields"]),
            size=int(d["size"]),
            volume_fraction_range=tuple(float(v) for v in d["volume_fraction_range"]),
            sigma_values=tuple(int(v) for v in d["sigma_values"]),
        )
