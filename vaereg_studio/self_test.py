"""``vaereg-studio --self-test``: run the app's whole pipeline once and report each step.

Checks that an installation (the source install or a built bundle) has what
the app needs: the model loads, structures are generated and predicted, the
mixture prior gives candidates, annealing runs, the FFT solver answers from
the physics child process, VTK renders a frame and the Qt window opens.
Each step prints one line, ``ok  STEP  FIGURE  MS`` or ``FAIL STEP: MESSAGE``;
the first failure ends the test with exit status 1 (never a traceback).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

ANNEAL_ITERATIONS = 5
PHYSICS_GRID = 16
FRAME_SIZE = (320, 240)


class StepFailed(Exception):
    """A step found something wrong; the message says what, in words a user can act on."""


def _message(exc: BaseException) -> str:
    """One line for any exception: the project's own errors speak for themselves."""
    from vaereg_core.errors import one_line

    text = str(exc) if isinstance(exc, StepFailed) else one_line(exc)
    return " ".join(text.split()) or type(exc).__name__


class SelfTest:
    """The steps, sharing what earlier steps made (model, structure, target, candidates).

    Parameters
    ----------
    model_path : str or Path, optional
        Model file to test with; the bundled default model by default.
    """

    def __init__(self, model_path: str | os.PathLike | None = None) -> None:
        self.model_path = None if model_path is None else Path(model_path)
        self.model: Any = None
        self.path: Path | None = None  # the model file
        self.voxels: np.ndarray | None = None
        self.target: Any = None
        self.found: list[Any] = []

    def steps(self) -> list[tuple[str, Callable[[], str]]]:
        """(name, step) in running order; each step returns its figure."""
        return [
            ("model", self.load_model),
            ("generate", self.generate),
            ("predict", self.predict),
            ("model-process", self.model_process),
            ("candidates", self.find_candidates),
            ("anneal", self.anneal),
            ("physics", self.physics),
            ("render", self.render),
            ("window", self.window),
        ]

    def load_model(self) -> str:
        """Load the model in this process (the engine's own check; the app's model process is a later step)."""
        from vaereg_core.resources import default_model_path
        from vaereg_studio import model_state

        path = self.model_path
        if path is None:
            path = default_model_path()
            if not path.is_file():
                raise StepFailed(f"no bundled model at {path}; pass --model FILE to test with another model")
        self.model = model_state.load(path)
        self.path = path
        if not self.model.is_generative:
            raise StepFailed(f"{path}: a regression-only model; the app's design panels need a VAE-Regression model")
        config = self.model.file.config.model
        n = len(self.model.property_names)
        return f"{path.name}: {self.model.grid}³ grid, {n} propert{'y' if n == 1 else 'ies'}, K = {config.n_components}, latent {self.model.latent_dim}"

    def generate(self) -> str:
        """One structure of the dataset recipe at the model's grid size."""
        from vaereg_core import microstructure
        from vaereg_core.descriptors import volume_fraction

        index = microstructure.filter_index((2, 2, 2))
        self.voxels = microstructure.generate(seed=1, field_index=0, filter_index=index, volume_fraction=0.4, size=self.model.grid)
        return f"{self.model.grid}³ voxels, volume fraction {volume_fraction(self.voxels):.2f}"

    def predict(self) -> str:
        """The regressor's prediction for the generated structure."""
        mean, std = self.model.predict(self.voxels)
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise StepFailed("the model predicted non-finite properties (NaN or inf)")
        return f"{self.model.property_names[0]} = {mean[0]:.1f} ± {std[0]:.1f} GPa"

    def model_process(self) -> str:
        """The model as the app runs it, in its own process: loaded there, and the same prediction."""
        import time

        from vaereg_studio.model_process import ModelProcess, predict

        start = time.perf_counter()
        process = ModelProcess(self.path)
        try:
            process.wait_ready()
            ready = time.perf_counter() - start
            mean, _ = process.call(predict, self.voxels)
        finally:
            process.close()
        here, _ = self.model.predict(self.voxels)
        if not np.allclose(mean, here, rtol=1e-4):
            raise StepFailed(f"the model's process predicts {mean[0]:.2f} GPa where this process predicts {here[0]:.2f} GPa")
        return f"loaded in {ready:.1f} s, same prediction"

    def find_candidates(self) -> str:
        """Mixture candidates for a target in the middle of the training range."""
        from vaereg_core.inverse.design import candidates
        from vaereg_core.inverse.targets import parse_target

        ranges = self.model.ranges
        middle = {n: 0.5 * (ranges[n][0] + ranges[n][1]) for n in self.model.property_names}
        self.target = parse_target(middle, self.model.property_names, ranges)
        self.found = candidates(self.model, self.target)
        if not self.found:
            raise StepFailed("the model's prior gave no candidates")
        shape = (self.model.grid,) * 3
        if any(c.voxels.shape != shape for c in self.found):
            raise StepFailed(f"a decoded candidate is not {self.model.grid}³")
        first = self.found[0]
        return f"{len(self.found)} for {self.model.property_names[0]} = {middle[self.model.property_names[0]]:.1f} GPa, {first.label} weight {first.weight:.2f}"

    def anneal(self) -> str:
        """A few iterations of latent-space annealing from the first candidate."""
        from vaereg_core.inverse.annealing import AnnealSettings
        from vaereg_core.inverse.design import refine

        result = refine(self.model, self.target, self.found[0].z, AnnealSettings(iterations=ANNEAL_ITERATIONS), validate_best=False)
        if result.anneal.iterations_done != ANNEAL_ITERATIONS:
            raise StepFailed(f"annealing stopped after {result.anneal.iterations_done} of {ANNEAL_ITERATIONS} iterations")
        return f"{ANNEAL_ITERATIONS} iterations, best error {100 * result.anneal.best.value:.1f} %"

    def physics(self) -> str:
        """FFT homogenisation of a small structure in the app's physics child process."""
        from vaereg_core import microstructure
        from vaereg_studio.physics_process import validate_in_process

        index = microstructure.filter_index((2, 2, 2))
        voxels = microstructure.generate(seed=2, field_index=0, filter_index=index, volume_fraction=0.4, size=PHYSICS_GRID)
        check = validate_in_process(voxels, self.target, cancel=lambda: False)
        values = np.array(list(check.constants.values()))
        if not np.all(np.isfinite(values) & (values > 0)):
            raise StepFailed(f"the solver gave non-physical constants {check.constants}")
        name = self.target.names[0]
        return f"{PHYSICS_GRID}³ in a child process: {name} = {check.constants[name]:.1f} GPa, {sum(check.iterations.values())} CG iterations"

    def render(self) -> str:
        """One off-screen frame of the hard-phase surface; it must not be blank."""
        import pyvista as pv

        from vaereg_core.voxel_io import hard_phase_surface

        surface = hard_phase_surface(self.voxels)
        plotter = pv.Plotter(off_screen=True, window_size=FRAME_SIZE)
        try:
            plotter.set_background("#1f2430")
            plotter.add_mesh(surface, color="#e8a33d")
            image = np.asarray(plotter.screenshot(None, return_img=True))
        finally:
            plotter.close()
        background = image[0, 0, :3].astype(int)
        drawn = float(np.mean(np.any(np.abs(image[..., :3].astype(int) - background) > 8, axis=-1)))
        if drawn < 0.02:
            raise StepFailed(f"the rendered frame is blank ({100 * drawn:.1f} % of pixels differ from the background)")
        return f"{image.shape[1]}×{image.shape[0]}, {surface.n_cells} triangles, {100 * drawn:.0f} % of pixels drawn"

    def window(self) -> str:
        """Open and close the main window (Qt platform plugin, VTK views, panels)."""
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise StepFailed("no display: run under a desktop session or `xvfb-run -a`")
        from PySide6.QtCore import QCoreApplication, QEvent, QSettings, qVersion
        from PySide6.QtWidgets import QApplication

        from vaereg_studio.main_window import MainWindow

        app = QApplication.instance() or QApplication([sys.argv[0]])
        with tempfile.TemporaryDirectory(prefix="vaereg-self-test-") as folder:
            window = MainWindow(QSettings(str(Path(folder) / "settings.ini"), QSettings.Format.IniFormat), load_default_model=False)
            window.show()
            for _ in range(5):
                app.processEvents()
                time.sleep(0.02)
            shown = window.isVisible()
            window.close()
            window.deleteLater()
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
            app.processEvents()
        if not shown:
            raise StepFailed("the main window did not show")
        return f"Qt {qVersion()} on {app.platformName()}"


def run(model_path: str | os.PathLike | None = None, out: TextIO | None = None) -> int:
    """Run every step, print one line each and a summary; returns the exit status (0 ok, 1 failed).

    Parameters
    ----------
    model_path : str or Path, optional
        Model file; the bundled default model by default.
    out : text stream, optional
        Where the lines go (standard output by default).
    """
    from vaereg_studio import APP_NAME, __version__

    out = out or sys.stdout
    test = SelfTest(model_path)
    start = time.perf_counter()
    names = [name for name, _ in test.steps()]
    print(f"{APP_NAME} {__version__} self-test ({'frozen bundle' if getattr(sys, 'frozen', False) else 'source install'}, Python {sys.version.split()[0]})", file=out, flush=True)
    for name, step in test.steps():
        t0 = time.perf_counter()
        try:
            figure = step()
        except KeyboardInterrupt:
            print(f"FAIL {name}: interrupted", file=out, flush=True)
            return 130
        except BaseException as exc:  # noqa: BLE001 (every failure becomes one line)
            print(f"FAIL {name}: {_message(exc)}", file=out, flush=True)
            print(f"self-test FAILED at step {names.index(name) + 1} of {len(names)} ({name})", file=out, flush=True)
            return 1
        print(f"ok   {name:<10}  {figure}  {1000 * (time.perf_counter() - t0):.0f} ms", file=out, flush=True)
    print(f"self-test passed: {len(names)} steps in {time.perf_counter() - start:.1f} s", file=out, flush=True)
    return 0
