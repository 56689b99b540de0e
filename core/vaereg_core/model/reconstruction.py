"""How well a generative model's decoder renders structures: ``decode(encode(x))`` against ``x``.

A statistics-loss decoder is not meant to reproduce voxels, so the comparison
is by what the loss and the physics care about: the volume fraction, the
feature size along each axis (the correlation length of the two-point
autocorrelation, which tells needles, plates and blobs apart) and, for a few
structures, the stiffness the FFT solver computes. Inverse design decodes
prior means with the same decoder, so these figures bound what its one-shot
candidates can reach.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from vaereg_core.descriptors import correlation_length, volume_fraction
from vaereg_core.model.inference import LoadedModel
from vaereg_core.model.posteriors import mean_kl, posteriors_of


@dataclass(frozen=True)
class ReconstructionQuality:
    """Mean errors of binarised reconstructions of test structures.

    Attributes
    ----------
    volume_fraction_error : float
        Mean |phi(x̂) - phi(x)| (absolute, not %).
    correlation_length_error : float
        Mean relative error of the correlation lengths along x, y, z, %.
    stiffness_error : float
        Mean relative error of the solver's constants of x̂ against those of x
        (the model's properties), %, over the first ``physics_count`` structures.
    count, physics_count : int
        Structures compared, and those solved.
    kl_to_prior : float
        Mean KL(q(z | x) || p(z | c)) in nats, c the structure's true
        properties: what the latent vector tells about the structure beyond
        its stiffness. Near zero the posterior has collapsed onto the prior,
        and the decoder cannot tell apart structures of equal stiffness,
        whatever it learns. (Counting active latent dimensions would not show
        this: with a conditional prior the means move with c even when collapsed.)
    posterior_std : float
        Median standard deviation of the posteriors.
    """

    volume_fraction_error: float
    correlation_length_error: float
    stiffness_error: float
    count: int
    physics_count: int
    kl_to_prior: float
    posterior_std: float


def feature_lengths(voxels: np.ndarray) -> np.ndarray:
    """Correlation lengths along the three axes, capped at half the box (voxels), (3,).

    The cap is where an empty or full structure's (infinite) length and the
    longest measurable periodic feature meet, so errors stay finite.
    """
    half = voxels.shape[0] / 2
    return np.array([min(correlation_length(voxels, axis), half) for axis in range(3)])


def structure_errors(originals: np.ndarray, reconstructions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per structure: absolute volume-fraction error and mean relative correlation-length error (%).

    Both are invariant to periodic shifts, as the two-point statistics are.

    Parameters
    ----------
    originals, reconstructions : (N, n, n, n) binary arrays

    Returns
    -------
    (N,) array, (N,) array
    """
    phi = np.array([[volume_fraction(a), volume_fraction(b)] for a, b in zip(originals, reconstructions)])
    lengths = [(feature_lengths(a), feature_lengths(b)) for a, b in zip(originals, reconstructions)]
    length_error = np.array([100 * np.mean(np.abs(b - a) / a) for a, b in lengths])
    return np.abs(phi[:, 1] - phi[:, 0]), length_error


def reconstruction_quality(
    model: LoadedModel,
    voxels: np.ndarray,
    properties: np.ndarray,
    *,
    physics_count: int = 8,
    **solver_options,
) -> tuple[ReconstructionQuality, np.ndarray]:
    """Compare test structures with their reconstructions; return the figures and the reconstructions.

    Parameters
    ----------
    model : LoadedModel
        A VAE-Regression (or vanilla VAE) model.
    voxels : (N, n, n, n) array
        Test structures.
    properties : (N, P) array
        Their constants in GPa, in the model's property order (from the
        dataset, computed with the same solver settings as ``solver_options``).
    physics_count : int
        How many of the structures (the first ones) to solve.
    solver_options
        Passed to :func:`vaereg_core.physics.homogenize`.
    """
    from vaereg_core.physics import homogenize

    means, stds = model.encode(voxels)
    # Binary decodes of the posterior means, as the app decodes latent vectors.
    reconstructions = model.decode(means, binary=True)
    phi_error, length_error = structure_errors(voxels, reconstructions)
    solved = min(physics_count, len(voxels))
    errors = []
    for x_hat, truth in zip(reconstructions[:solved], properties[:solved]):
        constants = homogenize(x_hat, constants="normal", **solver_options).constants
        achieved = np.array([constants[n] for n in model.property_names])
        errors.append(100 * np.mean(np.abs(achieved - truth) / truth))
    quality = ReconstructionQuality(
        volume_fraction_error=float(phi_error.mean()),
        correlation_length_error=float(length_error.mean()),
        stiffness_error=float(np.mean(errors)) if errors else float("nan"),
        count=len(voxels),
        physics_count=solved,
        kl_to_prior=mean_kl(model.network.generator, posteriors_of(model, means, stds, properties)),
        posterior_std=float(np.median(stds)),
    )
    return quality, reconstructions


def reconstruction_figure(path: str | os.PathLike, title: str, originals: np.ndarray, reconstructions: np.ndarray, count: int = 4) -> None:
    """Middle slices normal to x and to z of ``count`` structures (top) and their reconstructions (bottom)."""
    from matplotlib.figure import Figure

    count = min(count, len(originals))
    fig = Figure(figsize=(1.6 * 2 * count, 3.6), layout="constrained")
    axes = fig.subplots(2, 2 * count, squeeze=False)
    mid = originals.shape[-1] // 2
    for j in range(count):
        for row, v in enumerate((originals[j], reconstructions[j])):
            for k, (plane, label) in enumerate(((v[mid], "x"), (v[:, :, mid], "z"))):
                ax = axes[row, 2 * j + k]
                ax.imshow(plane, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{'test' if row == 0 else 'decoded'} {j + 1}, ⊥{label}, φ {volume_fraction(v):.2f}", fontsize=6)
    fig.suptitle(title, fontsize=8)
    fig.savefig(path, dpi=100)
