"""The 3-D voxel viewer: hard-phase surface, orthogonal slices, axes and scale."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkInteractionWidgets import vtkOrientationMarkerWidget
from vtkmodules.vtkRenderingAnnotation import vtkAxesActor

from vaereg_core import voxel_io
from vaereg_studio.scene_view import SceneView, colour_map_actor, outline_actor, rgb, surface_actor
from vaereg_studio.session.view_options import ViewOptions

AXES = ("x", "y", "z")
CAMERA_PRESETS = ("isometric", "+x", "-x", "+y", "-y", "+z", "-z")


def slice_plane(voxels: np.ndarray, axis: int, index: int) -> vtkImageData:
    """One voxel layer as a flat image (cell array ``phase``), drawn through the voxel centres.

    Voxel ``i`` occupies ``[i, i + 1]`` along each axis (the convention of the
    ``.vti`` files and of :func:`vaereg_core.voxel_io.hard_phase_surface`).
    """
    dims = [n + 1 for n in voxels.shape]
    dims[axis] = 1
    plane = vtkImageData()
    plane.SetDimensions(dims)
    set_slice_layer(plane, voxels, axis, index)
    return plane


def set_slice_layer(plane: vtkImageData, voxels: np.ndarray, axis: int, index: int) -> None:
    """Put layer ``index`` normal to ``axis`` into ``plane``: its position and its phases."""
    origin = [0.0, 0.0, 0.0]
    origin[axis] = index + 0.5
    plane.SetOrigin(origin)
    phases = numpy_to_vtk(np.take(voxels, index, axis=axis).ravel(order="F").astype(np.uint8), deep=True)
    phases.SetName("phase")
    plane.GetCellData().AddArray(phases)
    plane.Modified()


class VoxelViewer(QWidget):
    """A 3-D view of one binary structure (:class:`~vaereg_studio.scene_view.SceneView`).

    The view renders only when asked: a re-render timer (pyvistaqt's default,
    200 ms) kept a CPU core busy and stalled the UI thread on software OpenGL.

    Parameters
    ----------
    options : ViewOptions, optional
        Initial drawing options.
    parent : QWidget, optional
        Qt parent.

    Signals
    -------
    optionsChanged
        A drawing option changed (so controls showing it can follow).
    """

    optionsChanged = Signal()

    def __init__(self, options: ViewOptions | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.options = options or ViewOptions()
        self.view = SceneView(self.options.background, self)
        self.view.setAcceptDrops(False)  # the main window opens dropped files itself
        self._axes = orientation_axes(self.view)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.voxels: np.ndarray | None = None
        self.slice_index = [0, 0, 0]
        self._planes: list[vtkImageData] = []
        self.last_render_s = 0.0
        self._apply_axes()

    # ------------------------------------------------------------------ structure

    def show_structure(self, voxels: np.ndarray, surface: vtkPolyData | None, reset_camera: bool = True) -> None:
        """Replace the drawn structure; ``surface`` is its precomputed hard-phase surface."""
        new_shape = self.voxels is None or self.voxels.shape != voxels.shape
        self.voxels = voxels
        if new_shape:
            self.slice_index = [n // 2 for n in voxels.shape]
        self.view.set_actor("outline", outline_actor(voxels.shape))
        self.set_surface(surface, render=False)
        self._draw_slices()
        self._apply_scale()
        if reset_camera or new_shape:
            self.set_camera("isometric", render=False)
        self.render()

    def set_surface(self, surface: vtkPolyData | None, render: bool = True) -> None:
        """Draw a new hard-phase surface (``None``: no hard phase); smooth shading uses its point normals."""
        self.view.remove_actor("hard_phase")
        if surface is not None:
            actor = surface_actor(surface, self.options.hard_colour, self.options.opacity, smooth=self.options.smooth)
            actor.SetVisibility(self.options.show_surface)
            self.view.set_actor("hard_phase", actor)
        if render:
            self.render()

    def clear(self) -> None:
        """Remove the structure from the view."""
        for name in ("hard_phase", "outline", "scale", *(f"slice_{a}" for a in AXES)):
            self.view.remove_actor(name)
        self.voxels = None
        self._planes = []
        self.render()

    # ------------------------------------------------------------------ options

    def set_colours(self, hard: str | None = None, soft: str | None = None) -> None:
        """Change the phase colours (``#rrggbb``)."""
        if hard is not None:
            self.options.hard_colour = hard
            if "hard_phase" in self.view.actors:
                self.view.actors["hard_phase"].GetProperty().SetColor(rgb(hard))
        if soft is not None:
            self.options.soft_colour = soft
        self._draw_slices()
        self.optionsChanged.emit()
        self.render()

    def set_opacity(self, opacity: float) -> None:
        """Opacity of the hard-phase surface (lower it to see the slices inside)."""
        self.options.opacity = opacity
        if "hard_phase" in self.view.actors:
            self.view.actors["hard_phase"].GetProperty().SetOpacity(opacity)
        self.optionsChanged.emit()
        self.render()

    def set_surface_visible(self, visible: bool) -> None:
        """Show or hide the hard-phase surface."""
        self.options.show_surface = visible
        if "hard_phase" in self.view.actors:
            self.view.actors["hard_phase"].SetVisibility(visible)
        self.optionsChanged.emit()
        self.render()

    def set_slices_visible(self, visible: bool) -> None:
        """Show or hide the three orthogonal slices."""
        self.options.show_slices = visible
        self._draw_slices()
        self.optionsChanged.emit()
        self.render()

    def set_slice_index(self, axis: int, index: int) -> None:
        """Move the slice normal to ``axis`` to voxel layer ``index``."""
        if self.voxels is None:
            return
        index = int(np.clip(index, 0, self.voxels.shape[axis] - 1))
        self.slice_index[axis] = index
        if not self.options.show_slices or not self._planes:
            return
        # Update the drawn plane in place: cheaper than a new actor while dragging.
        set_slice_layer(self._planes[axis], self.voxels, axis, index)
        self.render()

    def set_axes_visible(self, visible: bool) -> None:
        """Show or hide the orientation axes."""
        self.options.show_axes = visible
        self._apply_axes()
        self.optionsChanged.emit()
        self.render()

    def set_scale_visible(self, visible: bool) -> None:
        """Show or hide the ruled bounding box (voxel units)."""
        self.options.show_scale = visible
        self._apply_scale()
        self.optionsChanged.emit()
        self.render()

    def set_camera(self, preset: str, render: bool = True) -> None:
        """Look from a preset direction (one of :data:`CAMERA_PRESETS`) at the whole structure."""
        if preset not in CAMERA_PRESETS:
            raise ValueError(f"unknown camera preset {preset!r}; use one of {', '.join(CAMERA_PRESETS)}")
        if preset == "isometric":
            direction, up = np.ones(3), (0.0, 0.0, 1.0)
        else:
            direction = np.eye(3)[AXES.index(preset[1])] * (1.0 if preset[0] == "+" else -1.0)
            up = (0.0, 1.0, 0.0) if preset[1] == "z" else (0.0, 0.0, 1.0)
        centre = np.array(self.voxels.shape) / 2.0 if self.voxels is not None else np.zeros(3)
        # Camera at +direction from the centre, looking back at it; look_at fits the distance.
        self.view.look_at(centre + direction, centre, up)
        if render:
            self.render()

    # ------------------------------------------------------------------ output

    def render(self) -> None:
        """Render now and remember how long it took."""
        start = time.perf_counter()
        self.view.render()
        self.last_render_s = time.perf_counter() - start

    def image(self) -> np.ndarray:
        """The current view as an (h, w, 3) uint8 RGB array."""
        self.render()
        return self.view.image()

    def save_screenshot(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the current view to a PNG file atomically."""
        from PIL import Image

        path = Path(path)
        image = Image.fromarray(self.image())
        with voxel_io.atomic_paths(path, overwrite=overwrite) as (temp,):
            image.save(temp, format="PNG")
        return path

    def close_view(self) -> None:
        """Release the render window (call before the widget is destroyed)."""
        self._axes.SetEnabled(False)
        self.view.close()

    # ------------------------------------------------------------------ helpers

    def _draw_slices(self) -> None:
        for name in (f"slice_{a}" for a in AXES):
            self.view.remove_actor(name)
        self._planes = []
        if self.voxels is None or not self.options.show_slices:
            return
        for axis, name in enumerate(AXES):
            plane = slice_plane(self.voxels, axis, self.slice_index[axis])
            self._planes.append(plane)
            self.view.set_actor(f"slice_{name}", colour_map_actor(plane, "phase", (self.options.soft_colour, self.options.hard_colour)))

    def _apply_axes(self) -> None:
        self._axes.SetEnabled(self.options.show_axes)
        if self.options.show_axes:
            self._axes.InteractiveOff()

    def _apply_scale(self) -> None:
        self.view.remove_actor("scale")
        if self.voxels is not None and self.options.show_scale:
            self.view.set_actor("scale", ruled_box(self.voxels.shape, self.view.camera))


def orientation_axes(view: SceneView) -> vtkOrientationMarkerWidget:
    """The x, y, z arrows in the view's lower left corner (pyvista's colours, white labels), turning with the camera."""
    axes = vtkAxesActor()
    for axis, colour in zip("XYZ", ("tomato", "seagreen", "blue")):
        for prop in (getattr(axes, f"Get{axis}AxisShaftProperty")(), getattr(axes, f"Get{axis}AxisTipProperty")()):
            prop.SetColor(rgb(colour))
            prop.SetAmbient(0.5)
        getattr(axes, f"Get{axis}AxisShaftProperty")().SetLineWidth(2)
        caption = getattr(axes, f"Get{axis}AxisCaptionActor2D")()
        caption.SetWidth(0.25)
        caption.SetHeight(0.1)
        text = caption.GetCaptionTextProperty()
        text.SetColor(1.0, 1.0, 1.0)
        text.SetShadow(False)
    axes.SetConeRadius(0.4)
    axes.SetNormalizedShaftLength(0.8, 0.8, 0.8)
    axes.SetNormalizedTipLength(0.2, 0.2, 0.2)
    widget = vtkOrientationMarkerWidget()
    widget.SetOrientationMarker(axes)
    widget.SetInteractor(view.interactor)
    widget.SetCurrentRenderer(view.renderer)
    widget.SetViewport(0.0, 0.0, 0.2, 0.2)
    widget.SetEnabled(True)
    widget.InteractiveOff()
    return widget


def ruled_box(shape: tuple[int, ...], camera):
    """The box's edges ruled in voxels on the outer edges (5 labels an axis), white, for the scale option."""
    from vtkmodules.vtkCommonCore import vtkStringArray
    from vtkmodules.vtkRenderingAnnotation import vtkCubeAxesActor

    box = vtkCubeAxesActor()
    box.SetCamera(camera)
    box.SetBounds(0, shape[0], 0, shape[1], 0, shape[2])
    box.SetFlyModeToOuterEdges()
    box.SetTickLocationToOutside()
    for axis, title in enumerate(("x (voxels)", "y (voxels)", "z (voxels)")):
        getattr(box, f"Set{'XYZ'[axis]}Title")(title)
        labels = vtkStringArray()
        for value in np.linspace(0, shape[axis], 5):
            labels.InsertNextValue(f"{value:.0f}")
        box.SetAxisLabels(axis, labels)
        box.GetTitleTextProperty(axis).SetColor(1.0, 1.0, 1.0)
        box.GetTitleTextProperty(axis).SetFontSize(10)
        box.GetLabelTextProperty(axis).SetColor(1.0, 1.0, 1.0)
        box.GetLabelTextProperty(axis).SetFontSize(10)
        getattr(box, f"Get{'XYZ'[axis]}AxesLinesProperty")().SetColor(1.0, 1.0, 1.0)
    box.XAxisMinorTickVisibilityOff()
    box.YAxisMinorTickVisibilityOff()
    box.ZAxisMinorTickVisibilityOff()
    box.SetScreenSize(10.0)
    return box
