"""The dataset file: a property table (and optionally voxels) in HDF5.

Layout (DESIGN.md section 3)::

    properties       float32 (N, 6)   attrs names = C11 C22 C33 C12 C13 C23, units = GPa
    sample           int32   (N,)     recipe sample number = field_index * 64 + filter_index
    field_index      int32   (N,)
    filter_index     int32   (N,)
    volume_fraction  float64 (N,)     hard-phase fraction of the generated voxels
    iterations       int32   (N, 3)   solver iterations per normal load case
    microstructures  uint8   (N, n, n, n)  only in a materialised cache
    attrs: format, version, recipe (JSON), solver (JSON), split_seed, failures (JSON)

Rows are kept sorted by sample number. The file is always written whole to a
temporary file and renamed into place, so it is never seen half-written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vaereg_core.atomic_files import remove_dead_writers_files
from vaereg_core.dataset.splits import DEFAULT_SPLIT_SEED, split_indices
from vaereg_core.errors import FileError
from vaereg_core.microstructure import Recipe
from vaereg_core.physics.phases import Material

FORMAT = "vaereg-dataset"
VERSION = 1
PROPERTY_NAMES = ("C11", "C22", "C33", "C12", "C13", "C23")
LOAD_CASES = ("e11", "e22", "e33")


class DatasetError(FileError):
    """A dataset file is missing, corrupt, foreign or does not match the command."""


@dataclass
class DatasetTable:
    """The property table of (part of) the recipe's structures, in memory."""

    recipe: Recipe
    solver: dict
    split_seed: int = DEFAULT_SPLIT_SEED
    sample: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    properties: np.ndarray = field(default_factory=lambda: np.zeros((0, 6), np.float32))
    volume_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    iterations: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int32))
    failures: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.sample.size)

    @property
    def field_index(self) -> np.ndarray:
        """Random-field index of each row."""
        return (self.sample // 64).astype(np.int32)

    @property
    def filter_index(self) -> np.ndarray:
        """Filter index of each row."""
        return (self.sample % 64).astype(np.int32)

    def done(self) -> set[int]:
        """Sample numbers already computed."""
        return set(self.sample.tolist())

    def append(self, samples, properties, volume_fractions, iterations) -> None:
        """Add rows (any order); the table stays sorted by sample number."""
        sample = np.concatenate([self.sample, np.asarray(samples, np.int32)])
        order = np.argsort(sample, kind="stable")
        if np.any(np.diff(sample[order]) == 0):
            raise ValueError("a sample was computed twice")
        self.sample = sample[order]
        self.properties = np.concatenate([self.properties, np.asarray(properties, np.float32).reshape(-1, 6)])[order]
        self.volume_fraction = np.concatenate([self.volume_fraction, np.asarray(volume_fractions, np.float64)])[order]
        self.iterations = np.concatenate([self.iterations, np.asarray(iterations, np.int32).reshape(-1, 3)])[order]

    def solver_options(self) -> dict:
        """The solver settings the table was computed with, as keyword arguments of ``homogenize``.

        Structures checked against this table (decoded, designed) are solved
        the same way and with the same phases, so their errors are not the
        solvers' differences.
        """
        options = {k: self.solver[k] for k in ("discretization", "tol", "dtype") if k in self.solver}
        return {**options, **Material.from_record(self.solver).solver_options()}

    def rows(self, split: str | None = None) -> np.ndarray:
        """Row indices of a split ('train', 'val', 'test') or of all rows."""
        if split is None:
            return np.arange(len(self))
        return split_indices(self.sample, self.recipe.n_structures, split, self.split_seed)

    def write(self, path: str | os.PathLike, *, microstructures: np.ndarray | None = None) -> None:
        """Write the whole file atomically (temporary file, fsync, rename)."""
        import h5py

        path = Path(path)
        remove_dead_writers_files(path)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with h5py.File(temp, "w") as f:
                f.attrs["format"] = FORMAT
                f.attrs["version"] = VERSION
                f.attrs["recipe"] = json.dumps(self.recipe.to_dict())
                f.attrs["solver"] = json.dumps(self.solver)
                f.attrs["split_seed"] = self.split_seed
                f.attrs["failures"] = json.dumps({str(k): v for k, v in self.failures.items()})
                props = f.create_dataset("properties", data=self.properties)
                props.attrs["names"] = list(PROPERTY_NAMES)
                props.attrs["units"] = "GPa"
                f.create_dataset("sample", data=self.sample)
                f.create_dataset("field_index", data=self.field_index)
                f.create_dataset("filter_index", data=self.filter_index)
                f.create_dataset("volume_fraction", data=self.volume_fraction)
                its = f.create_dataset("iterations", data=self.iterations)
                its.attrs["load_cases"] = list(LOAD_CASES)
                if microstructures is not None:
                    n = self.recipe.size
                    f.create_dataset(
                        "microstructures", data=microstructures, chunks=(1, n, n, n), compression="gzip", compression_opts=4
                    )
            with open(temp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)


def read_table(path: str | os.PathLike) -> DatasetTable:
    """Read and check a dataset file's table (not its voxels).

    Raises
    ------
    DatasetError
        Missing, unreadable, corrupt or foreign file.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "dataset file does not exist")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise DatasetError(path, f"not a VAEReg dataset file (attribute format={f.attrs.get('format')!r}, expected {FORMAT!r})")
            version = int(f.attrs["version"])
            if version > VERSION:
                raise DatasetError(path, f"written by a newer version (format version {version} > {VERSION})")
            names = tuple(str(s) for s in f["properties"].attrs["names"])
            if names != PROPERTY_NAMES:
                raise DatasetError(path, f"property names {names} differ from {PROPERTY_NAMES}")
            return DatasetTable(
                recipe=Recipe.from_dict(json.loads(f.attrs["recipe"])),
                solver=json.loads(f.attrs["solver"]),
                split_seed=int(f.attrs["split_seed"]),
                sample=f["sample"][()].astype(np.int32),
                properties=f["properties"][()].astype(np.float32),
                volume_fraction=f["volume_fraction"][()].astype(np.float64),
                iterations=f["iterations"][()].astype(np.int32),
                failures={int(k): v for k, v in json.loads(f.attrs["failures"]).items()},
            )
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DatasetError(path, f"cannot read the dataset, it is corrupt or incomplete ({type(exc).__name__}: {exc})") from exc


def has_microstructures(path: str | os.PathLike) -> bool:
    """Whether a dataset file holds materialised voxels."""
    import h5py

    with h5py.File(path, "r") as f:
        return "microstructures" in f
