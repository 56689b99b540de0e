"""The 3-D voxel viewer: hard-phase surface, orthogonal slices, axes and scale."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyvista as pv
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget
from pyvistaqt import QtInteractor

from vaereg_core import voxel_io
from vaereg_studio.session.view_options import ViewOptions

AXES = ("x", "y", "z")
CAMERA_PRESETS = ("isometric", "+x", "-x", "+y", "-y", "+z", "-z")


def slice_plane(voxels: np.ndarray, axis: int, index: int) -> pv.ImageData:
    """One voxel layer as a flat image, drawn through the voxel centres.

    Voxel ``i`` occupies ``[i, i + 1]`` along each axis (the convention of the
    ``.vti`` files and of :func:`vaereg_core.voxel_io.hard_phase_surface`).
    """
    dims = [n + 1 for n in voxels.shape]
    dims[axis] = 1
    origin = [0.0, 0.0, 0.0]
    origin[axis] = index + 0.5
    plane = pv.ImageData(dimensions=dims, origin=origin)
    plane.cell_data["phase"] = np.take(voxels, index, axis=axis).ravel(order="F").astype(np.uint8)
    return plane


class VoxelViewer(QWidget):
    """A pyvistaqt view of one binary structure.

    The interactor renders only when asked (``auto_update=False``): the
    default 200 ms re-render timer keeps a CPU core busy and stalls the UI
    thread on software OpenGL.

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
        self.plotter = QtInteractor(self, auto_update=False, multi_samples=0)
        self.plotter.setAcceptDrops(False)  # the main window opens dropped files itself
        if self.plotter.iren is not None:
            self.plotter.clear_events_for_key("q")  # pyvista's "q" prepares to close the plotter
        self.plotter.set_background(self.options.background)
        self.plotter.add_axes(interactive=False, color="white")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plotter)
        self.voxels: np.ndarray | None = None
        self.slice_index = [0, 0, 0]
        self._planes: list[pv.ImageData] = []
        self.last_render_s = 0.0
        self._apply_axes()

    # ------------------------------------------------------------------ structure

    def show_structure(self, voxels: np.ndarray, surface: pv.PolyData | None, reset_camera: bool = True) -> None:
        """Replace the drawn structure; ``surface`` is its precomputed hard-phase surface."""
        new_shape = self.voxels is None or self.voxels.shape != voxels.shape
        self.voxels = voxels
        if new_shape:
            self.slice_index = [n // 2 for n in voxels.shape]
        self.plotter.add_mesh(pv.ImageData(dimensions=[n + 1 for n in voxels.shape]).outline(), color="#9aa3b5", name="outline", reset_camera=False, render=False)
        self.set_surface(surface, render=False)
        self._draw_slices()
        self._apply_scale()
        if reset_camera or new_shape:
            self.set_camera("isometric", render=False)
        self.render()

    def set_surface(self, surface: pv.PolyData | None, render: bool = True) -> None:
        """Draw a new hard-phase surface (``None``: no hard phase)."""
        self.plotter.remove_actor("hard_phase", render=False)
        if surface is not None:
            self.plotter.add_mesh(
                surface,
                scalars=None,
                color=self.options.hard_colour,
                opacity=self.options.opacity,
                smooth_shading=self.options.smooth,
                name="hard_phase",
                reset_camera=False,
                show_scalar_bar=False,
                render=False,  # add_mesh renders by default: one frame per call, drawn by render() below
            )
            self.plotter.actors["hard_phase"].SetVisibility(self.options.show_surface)
        if render:
            self.render()

    def clear(self) -> None:
        """Remove the structure from the view."""
        for name in ("hard_phase", "outline", *(f"slice_{a}" for a in AXES)):
            self.plotter.remove_actor(name, render=False)
        self.plotter.remove_bounds_axes()
        self.voxels = None
        self._planes = []
        self.render()

    # ------------------------------------------------------------------ options

    def set_colours(self, hard: str | None = None, soft: str | None = None) -> None:
        """Change the phase colours (``#rrggbb``)."""
        if hard is not None:
            self.options.hard_colour = hard
            if "hard_phase" in self.plotter.actors:
                self.plotter.actors["hard_phase"].prop.color = hard
        if soft is not None:
            self.options.soft_colour = soft
        self._draw_slices()
        self.optionsChanged.emit()
        self.render()

    def set_opacity(self, opacity: float) -> None:
        """Opacity of the hard-phase surface (lower it to see the slices inside)."""
        self.options.opacity = opacity
        if "hard_phase" in self.plotter.actors:
            self.plotter.actors["hard_phase"].prop.opacity = opacity
        self.optionsChanged.emit()
        self.render()

    def set_surface_visible(self, visible: bool) -> None:
        """Show or hide the hard-phase surface."""
        self.options.show_surface = visible
        if "hard_phase" in self.plotter.actors:
            self.plotter.actors["hard_phase"].SetVisibility(visible)
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
        plane = self._planes[axis]
        origin = list(plane.origin)
        origin[axis] = index + 0.5
        plane.origin = origin
        plane.cell_data["phase"] = np.take(self.voxels, index, axis=axis).ravel(order="F").astype(np.uint8)
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
        # Camera at +direction from the centre, looking back at it; reset_camera fits the distance.
        self.plotter.camera_position = [tuple(centre + direction), tuple(centre), up]
        self.plotter.renderer.reset_camera(render=False)  # Plotter.reset_camera renders whatever it is told
        if render:
            self.render()

    # ------------------------------------------------------------------ output

    def render(self) -> None:
        """Render now and remember how long it took."""
        start = time.perf_counter()
        self.plotter.render()
        self.last_render_s = time.perf_counter() - start

    def image(self) -> np.ndarray:
        """The current view as an (h, w, 3) uint8 RGB array."""
        self.render()
        return np.asarray(self.plotter.screenshot(None, transparent_background=False, return_img=True))

    def save_screenshot(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the current view to a PNG file atomically."""
        from PIL import Image

        path = Path(path)
        image = Image.fromarray(self.image())
        with voxel_io.atomic_paths(path, overwrite=overwrite) as (temp,):
            image.save(temp, format="PNG")
        return path

    def close_plotter(self) -> None:
        """Release the render window (call before the widget is destroyed)."""
        self.plotter.close()

    # ------------------------------------------------------------------ helpers

    def _draw_slices(self) -> None:
        for name in (f"slice_{a}" for a in AXES):
            self.plotter.remove_actor(name, render=False)
        self._planes = []
        if self.voxels is None or not self.options.show_slices:
            return
        for axis, name in enumerate(AXES):
            plane = slice_plane(self.voxels, axis, self.slice_index[axis])
            self._planes.append(plane)
            self.plotter.add_mesh(
                plane,
                scalars="phase",
                cmap=[self.options.soft_colour, self.options.hard_colour],
                clim=(0, 1),
                n_colors=2,
                show_scalar_bar=False,
                lighting=False,
                name=f"slice_{name}",
                reset_camera=False,
                render=False,
            )

    def _apply_axes(self) -> None:
        if self.options.show_axes:
            self.plotter.show_axes()
        else:
            self.plotter.hide_axes()

    def _apply_scale(self) -> None:
        self.plotter.remove_bounds_axes()
        if self.voxels is not None and self.options.show_scale:
            nx, ny, nz = self.voxels.shape
            self.plotter.show_bounds(
                bounds=(0, nx, 0, ny, 0, nz),
                xtitle="x (voxels)",
                ytitle="y (voxels)",
                ztitle="z (voxels)",
                location="outer",
                ticks="outside",
                color="white",
                font_size=10,
                fmt="%.0f",
            )
