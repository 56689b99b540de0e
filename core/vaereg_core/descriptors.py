"""Statistical descriptors of a binary microstructure."""

from __future__ import annotations

import numpy as np


def volume_fraction(voxels: np.ndarray) -> float:
    """Fraction of voxels in the hard phase (value 1)."""
    return float(np.count_nonzero(voxels)) / voxels.size


def two_point_autocorrelation(voxels: np.ndarray, *, centered: bool = True) -> np.ndarray:
    """Periodic two-point autocorrelation S2(r) of the hard phase.

    ``S2(r)`` is the probability that two points a vector ``r`` apart are both
    in the hard phase, computed with FFTs on the periodic grid:
    ``S2 = irfftn(|rfftn(x)|^2) / N``. ``S2(0)`` is the volume fraction and
    ``S2`` tends to its square at large ``r`` for a disordered structure.

    Parameters
    ----------
    voxels : (nx, ny, nz) array
        Binary structure (1 = hard phase).
    centered : bool
        If True, shift ``r = 0`` to the centre of the array (``fftshift``).

    Returns
    -------
    ndarray of float64 with the shape of ``voxels``.
    """
    x = np.asarray(voxels, dtype=np.float64)
    f = np.fft.rfftn(x)
    s2 = np.fft.irfftn(f * np.conj(f), s=x.shape, axes=(0, 1, 2)) / x.size
    return np.fft.fftshift(s2) if centered else s2


def correlation_length(voxels: np.ndarray, axis: int) -> float:
    """Lag (voxels) along ``axis`` at which the normalised S2 falls below 1/e.

    The normalised autocovariance ``(S2(r) - phi^2) / (phi - phi^2)`` is 1 at
    ``r = 0``; the first lag where it drops below ``1/e`` (linearly
    interpolated) measures the size of the features along that axis.
    """
    s2 = two_point_autocorrelation(voxels, centered=False)
    phi = s2.flat[0]
    if phi in (0.0, 1.0):
        return float("inf")
    line = np.moveaxis(s2, axis, 0)[:, 0, 0]
    c = (line[: line.size // 2 + 1] - phi**2) / (phi - phi**2)
    below = np.nonzero(c < np.exp(-1.0))[0]
    if below.size == 0:
        return float(c.size)
    i = below[0]
    return float(i - 1 + (c[i - 1] - np.exp(-1.0)) / (c[i - 1] - c[i]))
