"""The structure shown in the app, and the loading work done off the UI thread.

Everything here is Qt-free so that it runs on worker threads; the numbers come
from :mod:`vaereg_core`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaereg_core import descriptors, voxel_io


@dataclass(frozen=True)
class Structure:
    """A binary voxel structure and where it came from.

    Attributes
    ----------
    voxels : (nx, ny, nz) ndarray of uint8
        1 = hard phase.
    name : str
        Short name for titles (the file name, or e.g. "candidate 2").
    path : Path or None
        File it was read from, if any.
    metadata : dict
        Provenance stored with the file (generator recipe, properties, ...).
    threshold : float or None
        The explicit threshold the user chose for grey-scale data.
    """

    voxels: np.ndarray
    name: str
    path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    threshold: float | None = None

    @property
    def volume_fraction(self) -> float:
        """Hard-phase volume fraction."""
        return descriptors.volume_fraction(self.voxels)

    @property
    def shape_text(self) -> str:
        """Grid size as ``"51 × 51 × 51"``."""
        return " × ".join(str(n) for n in self.voxels.shape)

    @property
    def is_cubic(self) -> bool:
        """Whether the grid is cubic (the model needs a cubic grid of its training size)."""
        return len(set(self.voxels.shape)) == 1


def read_structure(path: str | os.PathLike, threshold: float | None = None, index: int | None = None) -> Structure:
    """Read a voxel file into a :class:`Structure`.

    Raises
    ------
    vaereg_core.errors.VoxelFileError
        Anything wrong with the file; :class:`~vaereg_core.errors.NotBinaryError`
        for grey-scale data without a threshold.
    """
    path = Path(path)
    voxels, metadata = voxel_io.read_voxel_file(path, index=index, threshold=threshold)
    name = path.name if index is None else f"{path.name} [{index}]"
    return Structure(voxels=voxels, name=name, path=path, metadata=metadata, threshold=threshold)


def stack_size(error: Exception) -> int | None:
    """The number of structures when ``error`` says a stack needs an index, else ``None``.

    Relies on the reason :func:`vaereg_core.voxel_io.read_voxel_file` gives
    (tested in test_app_window.py, so a change of wording is noticed).
    """
    match = re.search(r"holds a stack of (\d+) structures", str(error))
    return int(match.group(1)) if match else None


def surface_mesh(voxels: np.ndarray, smooth: bool):
    """Hard-phase surface ready to draw (a ``vtkPolyData``): triangles plus point normals for smooth shading.

    Returns ``None`` when the structure has no hard phase. The smooth surface
    (the default view) comes from VTK's own filters; the blocky one from
    :func:`~vaereg_core.voxel_io.hard_phase_surface` (pyvista, on this worker).
    """
    from vaereg_studio.meshes import with_point_normals

    if not voxels.any():
        return None
    if smooth:
        return with_point_normals(voxel_io.level_surface(voxels))
    return voxel_io.hard_phase_surface(voxels, smooth=False)


def export_metadata(structure: Structure, app_version: str) -> dict[str, Any]:
    """Provenance written alongside an exported structure.

    Keeps what the source file recorded (recipe, properties, model, target,
    seed) and adds where the structure came from and which app wrote it.
    """
    metadata = dict(structure.metadata)
    metadata.update(
        {
            "exported_by": f"VAEReg Studio {app_version}",
            "source": str(structure.path) if structure.path else structure.name,
            "volume_fraction": structure.volume_fraction,
        }
    )
    if structure.threshold is not None:
        metadata["threshold"] = structure.threshold
    return metadata
