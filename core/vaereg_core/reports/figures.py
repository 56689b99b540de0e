"""Pictures of a structure for a report, as PNG bytes: a 3-D view, or mid-plane slices when that cannot render.

The 3-D view is a ``pyvista.Plotter(off_screen=True)``, which renders
without an X server through EGL or OSMesa (both inside the vtk wheel); where
no OpenGL context can be made, three mid-plane slices drawn by matplotlib's
Agg canvas stand in (no display either way).
"""

from __future__ import annotations

import io
import os

import numpy as np

from vaereg_core.voxel_io import hard_phase_surface

IMAGE_SIZE = (360, 300)  # pixels; a report holds tens of them inline
HARD_COLOUR = "#e08a2c"  # the app's default hard-phase colour
SOFT_COLOUR = "#3a6ea5"


def structure_png(voxels: np.ndarray) -> tuple[bytes, str]:
    """A picture of ``voxels`` and what it shows ("3-D view" or "mid-plane slices").

    The slices stand in when the 3-D view cannot render (no OpenGL).
    """
    try:
        return render_3d(voxels), "3-D view of the hard phase"
    except Exception:  # noqa: BLE001 (any rendering failure: the slices need no OpenGL)
        return render_slices(voxels), "mid-plane slices (hard phase orange)"


def render_3d(voxels: np.ndarray) -> bytes:
    """The hard-phase surface with the box outline, rendered off-screen."""
    if not os.environ.get("DISPLAY"):  # straight to EGL: no "bad X server connection" line first
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import pyvista as pv

    n = np.asarray(voxels).shape
    plotter = pv.Plotter(off_screen=True, window_size=IMAGE_SIZE)
    try:
        plotter.set_background("white")
        if np.any(voxels):
            plotter.add_mesh(hard_phase_surface(voxels, smooth=True), color=HARD_COLOUR, smooth_shading=True)
        plotter.add_mesh(pv.ImageData(dimensions=tuple(k + 1 for k in n)).outline(), color="#555555")
        centre = tuple(k / 2 for k in n)
        plotter.camera_position = [(1.6 * n[0], 1.3 * n[1], 1.9 * n[2]), centre, (0.0, 0.0, 1.0)]
        plotter.reset_camera()
        image = plotter.screenshot(return_img=True)
    finally:
        plotter.close()
    if image is None or np.asarray(image).std() == 0:
        raise RuntimeError("the off-screen render is blank")
    return _png(np.asarray(image)[..., :3])


def render_slices(voxels: np.ndarray) -> bytes:
    """The three mid-plane slices (x, y, z) side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    voxels = np.asarray(voxels)
    figure = Figure(figsize=(IMAGE_SIZE[0] / 100, IMAGE_SIZE[0] / 300 + 0.3), dpi=100)
    FigureCanvasAgg(figure)
    colours = ListedColormap([SOFT_COLOUR, HARD_COLOUR])
    for axis, name in enumerate("xyz"):
        ax = figure.add_subplot(1, 3, axis + 1)
        ax.imshow(np.take(voxels, voxels.shape[axis] // 2, axis=axis).T, cmap=colours, vmin=0, vmax=1, origin="lower", interpolation="nearest")
        ax.set_title(f"{name} = {voxels.shape[axis] // 2}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
