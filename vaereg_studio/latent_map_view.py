"""The latent explorer's map: training structures, candidates, designs and runs drawn with pyqtgraph.

A pyqtgraph ``ScatterPlotItem``, not matplotlib's Qt canvas: matplotlib
redraws the whole figure with Agg on every change (tens to hundreds of
milliseconds for thousands of points on this CPU), which the live
trajectories (up to 20 updates a second per run) would turn into a frozen UI;
pyqtgraph repaints only the items that changed, pans and zooms thousands of
points interactively, and maps clicks to data coordinates.

This module imports pyqtgraph (0.3–0.9 s on 2 cores, with the CUDA bindings
it probes for): the latent panel imports it only once a model with a latent
space is loaded, after the window's first picture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, Qt

DESIGN_COLOUR = "#1b7f3b"  # the verified designs' green, as on their cards
COLOUR_LEVELS = 64
"""Shades of the colour scale the map's points take (finer steps are invisible at a point's size)."""


class ColourBar(pg.PlotItem):
    """A vertical colour scale with a value axis on its right.

    Not pyqtgraph's ``ColorBarItem``: that builds a context menu and at once
    re-parents it to nothing, which crashed Qt (SIGSEGV in ``QMenu.setParent``)
    when a window was opened right after another was deleted.
    """

    def __init__(self, colour_map: pg.ColorMap, width: int = 14) -> None:
        super().__init__(enableMenu=False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.hideAxis("bottom")
        self.hideAxis("left")
        self.showAxis("right")
        self.axis = self.getAxis("right")
        self.axis.setWidth(56)  # room for the tick values and the label
        self.setFixedWidth(width + 56)
        self.gradient = pg.ImageItem(np.linspace(0.0, 1.0, 256)[None, :], levels=(0.0, 1.0))
        self.gradient.setLookupTable(colour_map.getLookupTable(nPts=256))
        self.addItem(self.gradient)
        self.setLevels((0.0, 1.0))

    def setLevels(self, levels: tuple[float, float]) -> None:
        """Show the scale from ``levels[0]`` (bottom) to ``levels[1]`` (top)."""
        low, high = levels
        span = high - low if high > low else 1.0
        self.gradient.setRect(0.0, low, 1.0, span)
        self.setRange(xRange=(0.0, 1.0), yRange=(low, low + span), padding=0)


class RunTrace:
    """An annealing run on the map: its trajectory and its best state."""

    def __init__(self, plot: pg.PlotItem, colour: str) -> None:
        self.curve = pg.PlotDataItem(pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=4, symbolBrush=colour, symbolPen=None)
        self.curve.setZValue(5)
        self.best = pg.ScatterPlotItem(size=12, symbol="o", pen=pg.mkPen("k", width=1.5), brush=pg.mkBrush(colour))
        self.best.setZValue(6)
        plot.addItem(self.curve)
        plot.addItem(self.best)

    def set_points(self, xy: np.ndarray) -> None:
        """Draw the trajectory through the map points ``xy`` (n × 2)."""
        self.curve.setData(xy[:, 0], xy[:, 1])

    def set_best(self, xy: np.ndarray) -> None:
        """Mark the best state at the map point ``xy`` (1 × 2)."""
        self.best.setData(pos=xy)


class LatentMapView(pg.GraphicsLayoutWidget):
    """PC 1 / PC 2 scatter of the training structures with a colour scale, candidates' stars, designs' paths, runs.

    Parameters
    ----------
    clicked : callable
        Called with the map point (x, y) the user clicked with the left button.
    """

    def __init__(self, clicked: Callable[[np.ndarray], None]) -> None:
        super().__init__()
        self.setBackground("w")
        self.setMinimumHeight(220)
        self.plot = self.addPlot(row=0, col=0, enableMenu=False)  # no context menu: see ColourBar
        self.plot.setLabel("bottom", "PC 1")
        self.plot.setLabel("left", "PC 2")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.scatter = pg.ScatterPlotItem(size=6, pen=None, hoverable=False)
        self.plot.addItem(self.scatter)
        self.candidate_marks = pg.ScatterPlotItem(size=16, symbol="star", pen=pg.mkPen("k"), brush=pg.mkBrush("#ffd700"))
        self.candidate_marks.setZValue(10)
        self.plot.addItem(self.candidate_marks)
        self.candidate_labels: list[pg.TextItem] = []
        self.design_items: list[pg.GraphicsObject] = []
        self.click_mark = pg.ScatterPlotItem(size=18, symbol="+", pen=pg.mkPen("k", width=2), brush=pg.mkBrush("k"))
        self.click_mark.setZValue(11)
        self.plot.addItem(self.click_mark)
        self.colour_bar = ColourBar(pg.colormap.get("viridis"))
        self.addItem(self.colour_bar, row=0, col=1)
        self._clicked = clicked
        self.scene().sigMouseClicked.connect(self._scene_clicked)

    def clear_map(self) -> None:
        """Remove the training structures and the clicked point (a new model)."""
        self.scatter.clear()
        self.click_mark.clear()

    def show_points(self, coordinates: np.ndarray, values: np.ndarray, name: str) -> None:
        """The training structures at ``coordinates``, coloured by ``values`` of the property ``name`` (GPa)."""
        low, high = float(np.min(values)), float(np.max(values))
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        # A few dozen shades, not one per point: pyqtgraph renders each distinct
        # brush's symbol once (2,000 renders took ~0.3 s of the UI thread).
        palette = [pg.mkBrush(c) for c in pg.colormap.get("viridis").map(np.linspace(0.0, 1.0, COLOUR_LEVELS), mode="qcolor")]
        shade = np.rint(scaled * (COLOUR_LEVELS - 1)).astype(int)
        self.scatter.setData(pos=coordinates, brush=[palette[i] for i in shade])
        self.colour_bar.setLevels((low, high))
        self.colour_bar.axis.setLabel(f"{name} (GPa)")

    def mark_candidates(self, labels: Sequence[str], xy: np.ndarray | None) -> None:
        """Stars with labels at the candidates' map points (``None``: none)."""
        for label in self.candidate_labels:
            self.plot.removeItem(label)
        self.candidate_labels = []
        if xy is None:
            self.candidate_marks.clear()
            return
        self.candidate_marks.setData(pos=xy)
        for label, (x, y) in zip(labels, xy):
            text = pg.TextItem(label, color="k", anchor=(0, 1))
            text.setPos(x, y)
            text.setZValue(12)
            self.plot.addItem(text)
            self.candidate_labels.append(text)
        self.fit()  # candidates may lie outside the training data's cloud

    def draw_designs(self, paths: Sequence[tuple[str, np.ndarray]]) -> None:
        """Each verified design's way through the map (label, n × 2 points), ending in a labelled diamond."""
        for item in self.design_items:
            self.plot.removeItem(item)
        self.design_items = []
        for label, xy in paths:
            curve = pg.PlotDataItem(xy[:, 0], xy[:, 1], pen=pg.mkPen(DESIGN_COLOUR, width=2, style=Qt.PenStyle.DashLine))
            end = pg.ScatterPlotItem(pos=xy[-1:], size=14, symbol="d", pen=pg.mkPen("k"), brush=pg.mkBrush(DESIGN_COLOUR))
            text = pg.TextItem(label, color=DESIGN_COLOUR, anchor=(0, 0))
            text.setPos(*xy[-1])
            for z, item in enumerate((curve, end, text)):
                item.setZValue(7 + z)
                self.plot.addItem(item)
                self.design_items.append(item)
        if paths:
            self.fit()

    def mark_click(self, point: np.ndarray) -> None:
        """The cross at the last clicked map point."""
        self.click_mark.setData(pos=np.asarray(point)[None])

    def add_run(self, colour: str) -> RunTrace:
        """A new run's trajectory and best-state marker, in ``colour``."""
        return RunTrace(self.plot, colour)

    def fit(self) -> None:
        """Show everything drawn."""
        self.plot.autoRange()

    def view_to_widget(self, x: float, y: float) -> QPoint:
        """Viewport coordinates of map point (x, y) (for clicking it in tests and scripts)."""
        return self.mapFromScene(self.plot.getViewBox().mapViewToScene(QPointF(x, y)))

    def _scene_clicked(self, event: object) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        view = self.plot.getViewBox()
        if not view.sceneBoundingRect().contains(event.scenePos()):
            return
        point = view.mapSceneToView(event.scenePos())
        self._clicked(np.array([point.x(), point.y()]))
