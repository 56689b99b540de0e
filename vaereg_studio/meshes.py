"""Surfaces ready to draw, on VTK's own filters (Qt-free, for worker threads; no pyvista before the first picture)."""

from __future__ import annotations

from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkQuadricDecimation


def with_point_normals(surface: vtkPolyData) -> vtkPolyData:
    """``surface`` with consistent point normals (array ``Normals``) for smooth shading, as pyvista's ``compute_normals``."""
    normals = vtkPolyDataNormals()
    normals.SetInputData(surface)
    normals.SetComputeCellNormals(False)
    normals.SetComputePointNormals(True)
    normals.SetSplitting(False)  # one normal a point: shading stays smooth across edges
    normals.SetFlipNormals(False)
    normals.SetConsistency(True)
    normals.SetAutoOrientNormals(False)
    normals.SetNonManifoldTraversal(True)
    normals.SetFeatureAngle(30.0)
    normals.Update()
    return normals.GetOutput()


def decimated(surface: vtkPolyData, target_reduction: float) -> vtkPolyData:
    """``surface`` with about ``target_reduction`` of its triangles removed (quadric decimation, as pyvista's ``decimate``)."""
    decimation = vtkQuadricDecimation()
    decimation.SetInputData(surface)
    decimation.SetVolumePreservation(False)
    decimation.SetAttributeErrorMetric(False)
    decimation.SetTargetReduction(target_reduction)
    decimation.Update()
    return decimation.GetOutput()
