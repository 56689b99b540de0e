"""A 3-D view in a Qt widget on VTK's own modules: one renderer, named actors, the look the app had with pyvista.

Plain VTK rather than pyvistaqt: importing pyvista's plotting (and the
matplotlib it imports unconditionally) took 2.5 s of the 2.8 s that the app
waited before its first picture on the 2-core machine; the VTK modules drawn
here take 0.35 s. The lights (a VTK light kit following the camera), the
trackball interaction and the surface properties are those pyvista gave.
"""

from __future__ import annotations

import numpy as np
import vtkmodules.vtkInteractionStyle  # noqa: F401 (registers the interactor styles)
import vtkmodules.vtkRenderingFreeType  # noqa: F401 (text of the axes' labels)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401 (the render window's OpenGL back end)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QWidget
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkDataSet, vtkPolyData
from vtkmodules.vtkFiltersSources import vtkOutlineSource
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingCore import vtkActor, vtkDataSetMapper, vtkLightKit, vtkProp, vtkRenderer, vtkWindowToImageFilter

OUTLINE_COLOUR = "#9aa3b5"


def rgb(colour: str) -> tuple[float, float, float]:
    """A colour name or ``#rrggbb`` as VTK's (r, g, b) in [0, 1]."""
    c = QColor(colour)
    if not c.isValid():
        raise ValueError(f"not a colour: {colour!r}")
    return c.redF(), c.greenF(), c.blueF()


class SceneView(QVTKRenderWindowInteractor):
    """A render window with one renderer whose actors have names; it renders only when asked.

    Parameters
    ----------
    background : str
        Background colour.
    parent : QWidget, optional
        Qt parent.
    """

    def __init__(self, background: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(rgb(background))
        self.renderer.SetTwoSidedLighting(True)
        vtkLightKit().AddLightsToRenderer(self.renderer)
        self.renderer.SetLightFollowCamera(True)
        self.render_window = self.GetRenderWindow()
        self.render_window.SetMultiSamples(0)
        self.render_window.AddRenderer(self.renderer)
        self.interactor = self.render_window.GetInteractor()
        style = vtkInteractorStyleTrackballCamera()
        style.AddObserver("CharEvent", lambda *_: None)  # no VTK key actions ("q" quits, "3" stereo, "w" wireframe…)
        self.interactor.SetInteractorStyle(style)
        self.interactor.Initialize()
        self.actors: dict[str, vtkProp] = {}

    @property
    def camera(self):
        """The renderer's ``vtkCamera``."""
        return self.renderer.GetActiveCamera()

    @property
    def window_size(self) -> tuple[int, int]:
        """The render window's (width, height) in pixels."""
        return tuple(self.render_window.GetSize())

    def set_actor(self, name: str, actor: vtkProp) -> vtkProp:
        """Draw ``actor`` under ``name``, replacing the one of that name."""
        self.remove_actor(name)
        self.renderer.AddActor(actor)
        self.actors[name] = actor
        return actor

    def remove_actor(self, name: str) -> None:
        """Remove the actor called ``name`` (nothing when there is none)."""
        actor = self.actors.pop(name, None)
        if actor is not None:
            self.renderer.RemoveActor(actor)

    def look_at(self, position, focal_point, up) -> None:
        """Place the camera, then move it along its direction until the scene fits."""
        camera = self.camera
        camera.SetPosition(*position)
        camera.SetFocalPoint(*focal_point)
        camera.SetViewUp(*up)
        self.renderer.ResetCamera()

    def render(self) -> None:
        """Render now."""
        self.render_window.Render()

    def image(self) -> np.ndarray:
        """The view as an (h, w, 3) uint8 RGB array, rendered now."""
        self.render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(self.render_window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        out = grab.GetOutput()
        width, height, _ = out.GetDimensions()
        pixels = vtk_to_numpy(out.GetPointData().GetScalars()).reshape(height, width, -1)
        return np.ascontiguousarray(pixels[::-1, :, :3])

    def close(self) -> bool:
        """Release the render window (before the widget goes)."""
        self.actors.clear()
        self.render_window.Finalize()
        self.interactor.TerminateApp()
        return super().close()


def surface_actor(surface: vtkPolyData, colour: str, opacity: float = 1.0, smooth: bool = True) -> vtkActor:
    """A surface drawn in one colour: smooth (Phong, the surface's point normals) or flat, lit as pyvista lit it."""
    mapper = vtkDataSetMapper()
    mapper.SetInputData(surface)
    mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetColor(rgb(colour))
    prop.SetOpacity(opacity)
    prop.SetAmbient(0.0)
    prop.SetDiffuse(1.0)
    prop.SetSpecular(0.0)
    if smooth:
        prop.SetInterpolationToPhong()
    else:
        prop.SetInterpolationToFlat()
    return actor


def outline_actor(shape: tuple[int, ...], colour: str = OUTLINE_COLOUR) -> vtkActor:
    """The edges of the box ``[0, nx] × [0, ny] × [0, nz]`` (voxel units)."""
    box = vtkOutlineSource()
    box.SetBounds(0, shape[0], 0, shape[1], 0, shape[2])
    box.Update()
    return surface_actor(box.GetOutput(), colour, smooth=False)


def colour_map_actor(data: vtkDataSet, array: str, colours: tuple[str, ...]) -> vtkActor:
    """``data`` coloured by its integer cell array ``array`` (0, 1, …: one colour each), unlit."""
    from vtkmodules.vtkCommonCore import vtkLookupTable

    table = vtkLookupTable()
    table.SetNumberOfTableValues(len(colours))
    for i, colour in enumerate(colours):
        table.SetTableValue(i, *rgb(colour), 1.0)
    table.SetTableRange(0, len(colours) - 1)
    table.Build()
    mapper = vtkDataSetMapper()
    mapper.SetInputData(data)
    mapper.SetLookupTable(table)
    mapper.SetScalarModeToUseCellFieldData()
    mapper.SelectColorArray(array)
    mapper.SetScalarRange(0, len(colours) - 1)
    mapper.SetColorModeToMapScalars()  # uint8 values are phases, not colours
    mapper.ScalarVisibilityOn()
    actor = vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetLighting(False)
    return actor
