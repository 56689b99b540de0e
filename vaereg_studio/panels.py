"""Dock panels: view controls and structure information."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)
from superqt import QElidingLabel, QLabeledDoubleSlider, QLabeledSlider
from vaereg_core.provenance import ProvenanceRow, provenance_rows

from vaereg_studio.structure import Structure
from vaereg_studio.viewer import AXES, VoxelViewer


class ColourButton(QPushButton):
    """A push button showing a colour; clicking it opens a colour dialog."""

    colourChanged = Signal(str)

    def __init__(self, colour: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedWidth(48)
        self.clicked.connect(self._choose)
        self.set_colour(colour)

    def colour(self) -> str:
        """Current colour as ``#rrggbb``."""
        return self._colour

    def set_colour(self, colour: str) -> None:
        """Show ``colour`` (no signal)."""
        self._colour = QColor(colour).name()
        self.setStyleSheet(f"background-color: {self._colour}; border: 1px solid #666; min-height: 18px;")
        self.setToolTip(self._colour)

    def _choose(self) -> None:
        chosen = QColorDialog.getColor(QColor(self._colour), self, "Phase colour")
        if chosen.isValid():
            self.set_colour(chosen.name())
            self.colourChanged.emit(self._colour)


class ViewPanel(QWidget):
    """Controls of the 3-D view: surface, slices, colours, axes and camera.

    Cheap changes go straight to the viewer; a switch between smooth and
    blocky surfaces needs a new surface, which the main window computes on a
    worker, so it is only announced with :attr:`smoothChanged`.
    """

    smoothChanged = Signal(bool)

    def __init__(self, viewer: VoxelViewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        options = viewer.options
        layout = QVBoxLayout(self)

        surface_box = QGroupBox("Hard-phase surface")
        form = QFormLayout(surface_box)
        self.show_surface = QCheckBox("Show")
        self.show_surface.setChecked(options.show_surface)
        self.show_surface.toggled.connect(viewer.set_surface_visible)
        form.addRow(self.show_surface)
        self.style_combo = QComboBox()
        self.style_combo.addItems(["Smooth", "Blocky (voxels)"])
        self.style_combo.setCurrentIndex(0 if options.smooth else 1)
        self.style_combo.currentIndexChanged.connect(lambda i: self.smoothChanged.emit(i == 0))
        form.addRow("Style", self.style_combo)
        self.opacity = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0.05, 1.0)
        self.opacity.setDecimals(2)
        self.opacity.setValue(options.opacity)
        self.opacity.valueChanged.connect(viewer.set_opacity)
        form.addRow("Opacity", self.opacity)
        self.hard_colour = ColourButton(options.hard_colour)
        self.hard_colour.colourChanged.connect(lambda c: viewer.set_colours(hard=c))
        form.addRow("Hard phase", self.hard_colour)
        self.soft_colour = ColourButton(options.soft_colour)
        self.soft_colour.colourChanged.connect(lambda c: viewer.set_colours(soft=c))
        form.addRow("Soft phase (slices)", self.soft_colour)
        layout.addWidget(surface_box)

        slices_box = QGroupBox("Orthogonal slices")
        form = QFormLayout(slices_box)
        self.show_slices = QCheckBox("Show")
        self.show_slices.setChecked(options.show_slices)
        self.show_slices.toggled.connect(self._slices_toggled)
        form.addRow(self.show_slices)
        self.slice_sliders: list[QLabeledSlider] = []
        for axis, name in enumerate(AXES):
            slider = QLabeledSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, 0)
            slider.setEnabled(options.show_slices)
            slider.valueChanged.connect(lambda value, a=axis: viewer.set_slice_index(a, value))
            form.addRow(f"{name} layer", slider)
            self.slice_sliders.append(slider)
        layout.addWidget(slices_box)

        display_box = QGroupBox("Display")
        grid = QGridLayout(display_box)
        self.show_axes = QCheckBox("Axes")
        self.show_axes.setChecked(options.show_axes)
        self.show_axes.toggled.connect(viewer.set_axes_visible)
        self.show_scale = QCheckBox("Scale (voxels)")
        self.show_scale.setChecked(options.show_scale)
        self.show_scale.toggled.connect(viewer.set_scale_visible)
        grid.addWidget(self.show_axes, 0, 0)
        grid.addWidget(self.show_scale, 0, 1)
        isometric = QPushButton("Isometric / reset")
        isometric.clicked.connect(lambda: viewer.set_camera("isometric"))
        grid.addWidget(isometric, 1, 0, 1, 2)
        for row, axis in enumerate(AXES, start=2):
            for column, sign in enumerate("+-"):
                preset = f"{sign}{axis}"
                button = QPushButton(f"From {preset}")
                button.setToolTip(f"Look at the structure from the {preset} direction")
                button.clicked.connect(lambda _=False, p=preset: viewer.set_camera(p))
                grid.addWidget(button, row, column)
        layout.addWidget(display_box)
        layout.addStretch(1)
        viewer.optionsChanged.connect(self.sync)

    def sync(self) -> None:
        """Show the viewer's current options (after a change made elsewhere, e.g. by a script)."""
        options = self.viewer.options
        for widget, setter, value in (
            (self.show_surface, self.show_surface.setChecked, options.show_surface),
            (self.style_combo, self.style_combo.setCurrentIndex, 0 if options.smooth else 1),
            (self.opacity, self.opacity.setValue, options.opacity),
            (self.show_slices, self.show_slices.setChecked, options.show_slices),
            (self.show_axes, self.show_axes.setChecked, options.show_axes),
            (self.show_scale, self.show_scale.setChecked, options.show_scale),
        ):
            widget.blockSignals(True)
            setter(value)
            widget.blockSignals(False)
        self.hard_colour.set_colour(options.hard_colour)
        self.soft_colour.set_colour(options.soft_colour)
        for slider in self.slice_sliders:
            slider.setEnabled(options.show_slices)

    def structure_changed(self) -> None:
        """Fit the slice sliders to the viewer's structure."""
        if self.viewer.voxels is None:
            return
        for axis, slider in enumerate(self.slice_sliders):
            slider.blockSignals(True)
            slider.setRange(0, self.viewer.voxels.shape[axis] - 1)
            slider.setValue(self.viewer.slice_index[axis])
            slider.blockSignals(False)

    def _slices_toggled(self, visible: bool) -> None:
        for slider in self.slice_sliders:
            slider.setEnabled(visible)
        self.viewer.set_slices_visible(visible)


class StructurePanel(QWidget):
    """What is known about the shown structure: file, grid, volume fraction, provenance, properties."""

    def __init__(self, model_grid: int = 51, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_grid = model_grid
        layout = QVBoxLayout(self)
        info = QGroupBox("Structure")
        form = QFormLayout(info)
        self.name = QElidingLabel("—")
        self.path = QElidingLabel("—")
        self.path.setElideMode(Qt.TextElideMode.ElideLeft)
        self.grid = QLabel("—")
        self.grid_warning = QLabel()
        self.grid_warning.setWordWrap(True)
        self.grid_warning.hide()
        self.volume_fraction = QLabel("—")
        self.volume_fraction.setObjectName("volumeFraction")
        form.addRow("Name", self.name)
        form.addRow("File", self.path)
        form.addRow("Grid", self.grid)
        form.addRow(self.grid_warning)
        form.addRow("Hard-phase volume fraction", self.volume_fraction)
        layout.addWidget(info)

        self.provenance = ProvenanceTable()
        # Scrolled: a long provenance (word-wrapped rows) once grew the panel, the
        # dock and the window in a dozen steps, each re-rendering the 3-D view.
        provenance_scroll = QScrollArea()
        provenance_scroll.setWidgetResizable(True)
        provenance_scroll.setFrameShape(QFrame.Shape.NoFrame)
        provenance_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        provenance_scroll.setWidget(self.provenance)
        provenance_box = QGroupBox("Stored with the file")
        QVBoxLayout(provenance_box).addWidget(provenance_scroll)
        layout.addWidget(provenance_box, 1)

        predicted_box = QGroupBox("Predicted properties (model)")
        self.predicted = QLabel()
        self.predicted.setObjectName("predictedProperties")
        self.predicted.setWordWrap(True)
        QVBoxLayout(predicted_box).addWidget(self.predicted)
        layout.addWidget(predicted_box)
        self.set_model_status("No model loaded.")

    def show_structure(self, structure: Structure) -> None:
        """Fill in the fields for ``structure``."""
        self.name.setText(structure.name)
        self.path.setText(str(structure.path) if structure.path else "(not saved)")
        self.path.setToolTip(str(structure.path or ""))
        self.grid.setText(structure.shape_text)
        fits = structure.voxels.shape == (self.model_grid,) * 3
        self.grid_warning.setText(f"⚠ The model needs a {self.model_grid}³ grid: this structure is for viewing only.")
        self.grid_warning.setVisible(not fits)
        self.volume_fraction.setText(f"{structure.volume_fraction:.4f}")
        self.provenance.set_rows(provenance_rows(structure.metadata))

    def set_model_status(self, text: str) -> None:
        """What the predicted-properties box says when it has no prediction to show."""
        self.predicted.setText(text)


class ProvenanceTable(QWidget):
    """The provenance stored with a file, one quantity per row; a shortened value (the latent vector) gets a Copy button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)  # values get the dock's whole width
        self.rows: list[ProvenanceRow] = []
        self.set_rows([])

    def set_rows(self, rows: Sequence[ProvenanceRow]) -> None:
        """Show ``rows`` in place of the previous ones."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.rows = list(rows)
        if not self.rows:
            self.form.addRow(QLabel("nothing"))
        for row in self.rows:
            value = QLabel(row.value)
            value.setWordWrap(True)
            value.setIndent(8)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            if row.copy is None:
                self.form.addRow(row.quantity, value)
                continue
            field = QWidget()
            line = QHBoxLayout(field)
            line.setContentsMargins(0, 0, 0, 0)
            line.addWidget(value, 1)
            button = QPushButton("Copy")
            button.setToolTip(f"Copy the whole {row.quantity.lower()} (JSON) to the clipboard")
            button.clicked.connect(lambda _=False, text=row.copy: QGuiApplication.clipboard().setText(text))
            line.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
            self.form.addRow(row.quantity, field)

    def copy_buttons(self) -> list[QPushButton]:
        """The rows' Copy buttons, in row order."""
        return self.findChildren(QPushButton)
