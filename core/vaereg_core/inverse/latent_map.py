"""A 2-D PCA map of the latent space, for exploring and for drawing trajectories."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:  # scikit-learn (with SciPy) takes a second to import: the app's window needs this module before any map
    from sklearn.decomposition import PCA

MAP_STRUCTURES = 2000
"""Training structures a model's map shows: enough to see its clusters, about 2 minutes of encoding on 2 CPU cores."""


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
    model_checksum : str
        Checksum of the model file whose encoder made ``latents`` (empty if
        unknown): a stored map belongs to that model only.

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
    model_checksum: str = ""

    @classmethod
    def fit(cls, latents: np.ndarray, properties: np.ndarray, property_names: tuple[str, ...], model_checksum: str = "") -> "LatentMap":
        """Fit the PCA (all components kept, so back-projection can be exact)."""
        from sklearn.decomposition import PCA

        latents = np.asarray(latents, dtype=np.float64)
        pca = PCA(n_components=latents.shape[1]).fit(latents)
        return cls(pca, latents, np.asarray(properties, dtype=np.float64), tuple(property_names), pca.transform(latents)[:, :2], model_checksum)

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

    def save(self, path: str | os.PathLike) -> Path:
        """Store the latent means and properties (the PCA is refitted on load: it is cheap and exact)."""
        from vaereg_core.voxel_io import atomic_paths

        path = Path(path)
        with atomic_paths(path, overwrite=True) as (temp,):
            with open(temp, "wb") as f:
                np.savez_compressed(
                    f,
                    latents=self.latents.astype(np.float32),
                    properties=self.properties.astype(np.float32),
                    names=np.array(self.property_names),
                    model_checksum=np.array(self.model_checksum),
                )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatentMap":
        """Inverse of :meth:`save`."""
        with np.load(path, allow_pickle=False) as f:
            checksum = str(f["model_checksum"]) if "model_checksum" in f else ""
            return cls.fit(f["latents"], f["properties"], tuple(str(n) for n in f["names"]), checksum)


def map_rows(count: int, max_structures: int | None = None, seed: int = 0) -> np.ndarray:
    """Which of ``count`` dataset items a map encodes: all, or a seeded random subset of ``max_structures``, in order."""
    rows = np.arange(count)
    if max_structures is not None and max_structures < count:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_structures, replace=False))
    return rows


def latent_map(
    model,
    dataset,
    *,
    max_structures: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> LatentMap:
    """Encode a dataset's structures with the model and fit the PCA map.

    Parameters
    ----------
    model : vaereg_core.model.inference.LoadedModel
        A VAE-Regression model.
    dataset : vaereg_core.dataset.MicrostructureDataset
        Usually the training split, with the model's properties.
    max_structures : int, optional
        Encode a random subset of this size (seeded) to save time.
    progress : callable(done, total), optional
        Called after each batch.
    """
    rows = map_rows(len(dataset), max_structures, seed)
    latents = []
    batch = 32
    for start in range(0, rows.size, batch):
        chunk = rows[start : start + batch]
        voxels = np.stack([dataset.voxels(int(i)) for i in chunk])
        latents.append(np.atleast_2d(model.encode(voxels)[0]))
        if progress is not None:
            progress(min(start + batch, rows.size), rows.size)
    properties = dataset.properties.numpy()[rows]
    return LatentMap.fit(np.concatenate(latents), properties, tuple(dataset.property_names), model.file.checksum)


def map_path(model_path: str | os.PathLike) -> Path:
    """Where a model's map is stored beside it: ``<model stem>.latents.npz`` (shipped models have one)."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".latents.npz")


def training_map(
    model,
    dataset_path: str | os.PathLike,
    *,
    max_structures: int | None = MAP_STRUCTURES,
    progress: Callable[[int, int], None] | None = None,
) -> LatentMap:
    """The map of the structures a model was trained on: its subset's training split (by its split seed).

    The voxels come from ``dataset_path``: a materialised cache, or the
    property table, whose structures are regenerated bit for bit from its
    recipe (slower, same map).

    Raises
    ------
    vaereg_core.dataset.table.DatasetError
        The dataset's grid is not the model's, or its training split is empty.
    """
    from vaereg_core.dataset import MicrostructureDataset
    from vaereg_core.dataset.table import DatasetError

    train = model.file.config.train
    dataset = MicrostructureDataset(dataset_path, split="train", properties=model.property_names, subset=train.subset, split_seed=train.split_seed)
    if dataset.table.recipe.size != model.grid:
        raise DatasetError(dataset_path, f"its structures are {dataset.table.recipe.size}³ but the model takes {model.grid}³")
    if len(dataset) == 0:
        raise DatasetError(dataset_path, "its training split is empty")
    return latent_map(model, dataset, max_structures=max_structures, progress=progress)
