"""A 2-D PCA map of the latent space, for exploring and for drawing trajectories."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA


@dataclass
class LatentMap:
    """PCA of latent means, with projection and back-projection.

    Parameters
    ----------
    latents : (N, d) array
        Latent means of the training structures.
    properties : (N, P) array
        Their properties (GPa), used to colour the map.
    property_names : tuple of str
        Names of the property columns.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> m = LatentMap.fit(rng.normal(size=(100, 4)), rng.normal(size=(100, 1)), ("C11",))
    >>> m.coordinates.shape
    (100, 2)
    >>> z = m.latents[3]
    >>> bool(np.allclose(m.lift(m.project(z[None])[0], fill="nearest", reference=z), z))
    True
    """

    pca: PCA
    latents: np.ndarray
    properties: np.ndarray
    property_names: tuple[str, ...]
    coordinates: np.ndarray

    @classmethod
    def fit(cls, latents: np.ndarray, properties: np.ndarray, property_names: tuple[str, ...]) -> "LatentMap":
        """Fit the PCA (all components kept, so back-projection can be exact)."""
        latents = np.asarray(latents, dtype=np.float64)
        pca = PCA(n_components=latents.shape[1]).fit(latents)
        return cls(pca, latents, np.asarray(properties, dtype=np.float64), tuple(property_names), pca.transform(latents)[:, :2])

    @property
    def explained_variance(self) -> tuple[float, float]:
        """Fraction of the latent variance along the two map axes."""
        r = self.pca.explained_variance_ratio_
        return float(r[0]), float(r[1])

    def project(self, z: np.ndarray) -> np.ndarray:
        """Map coordinates (M, 2) of latent vectors (M, d)."""
        return self.pca.transform(np.atleast_2d(np.asarray(z, dtype=np.float64)))[:, :2]

    def nearest(self, point: np.ndarray) -> int:
        """Index of the training structure closest to a map point."""
        return int(np.argmin(np.sum((self.coordinates - np.asarray(point)) ** 2, axis=1)))

    def lift(self, point: np.ndarray, *, fill: str = "nearest", reference: np.ndarray | None = None) -> np.ndarray:
        """A latent vector (d,) whose map coordinates are ``point``.

        The two map components come from ``point``; the other d - 2 principal
        components are taken from ``reference`` if given, else from the nearest
        training structure (``fill="nearest"``: a point that looks like the data
        there) or set to zero, the data mean (``fill="zero"``).
        """
        if fill not in ("nearest", "zero"):
            raise ValueError(f"fill must be 'nearest' or 'zero', got {fill!r}")
        if reference is not None:
            scores = self.pca.transform(np.asarray(reference, dtype=np.float64)[None])[0]
        elif fill == "nearest":
            scores = self.pca.transform(self.latents[self.nearest(point)][None])[0]
        else:
            scores = np.zeros(self.pca.n_components_)
        scores = scores.copy()
        scores[:2] = point
        return self.pca.inverse_transform(scores[None])[0]
