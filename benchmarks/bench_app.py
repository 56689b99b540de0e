"""Benchmark the desktop app: start to first rendered structure, surface extraction, frame time.

Run: ``.venv/bin/python benchmarks/bench_app.py [--launches 4] [--frames 10] [--start-only] [--baseline DIR]``
(``--launches 0``: the in-window measures only).
Without a display it re-runs itself under ``xvfb-run`` (1280x1024x24, Mesa's llvmpipe).

- *launch phases*: wall time from starting ``python`` to the app's modules
  imported (``vaereg_studio.__main__``), the window built and shown (the
  window's modules, its widgets), the bundled sample drawn (reading, surface,
  first render), the default model ready (loaded after that first render) and
  its latent map drawn (with whether it had to be computed: the shipped map
  needs no encoding), and the longest event-loop gap between the first render
  and the map. The first launch is "cold" (whatever the OS has not cached
  yet); the median of the others is "warm". It also says whether torch or
  pyqtgraph was imported before the first render. The machine's load changes
  these figures several-fold: compare two versions in one run, alternately.
- *surface*: hard-phase surface extraction of the 51³ sample (worker-thread work).
- *frame*: median time of one ``render()`` of the 51³ sample in the 3-D view at
  the window's size, for the smooth and the blocky surface and with slices.
- *candidates*: inverse-design latency with the bundled model (or, without one,
  the tests' tiny random 19³ model, K = 3): ``vaereg_core.inverse.design.candidates``
  alone, and in the app from "Find candidates" to every candidate card drawn
  (worker, decimated thumbnails, one small 3-D view per card), first with the
  model's predictions still pending (they come from a second task), then with them.
- *event loop*: the longest time the UI thread went without serving events
  (:class:`vaereg_studio.latency.EventLoopProbe`, 5 ms timer) while every card
  validates on the physics solver, and while two annealing runs of 25
  iterations go side by side. The target is under 100 ms (no visible freeze).
- *cancel*: median time from an annealing run's Cancel click to the run
  reported finished (3 runs of 5,000 iterations, each cancelled after a few).
- *session*: the search's cards saved as a session and reopened in the same
  window: from File → Open Session to every card drawn (the cards' surfaces
  are rebuilt from the saved voxels).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = """
import sys, time
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication
from vaereg_studio.__main__ import launch
from vaereg_studio.latency import EventLoopProbe
marks = {"imports": time.time()}
window = launch([], settings=QSettings(sys.argv[1], QSettings.Format.IniFormat))
marks["window"] = time.time()
probe = EventLoopProbe()
open_model = window.open_model
def open_model_after_first_render(path):  # what was imported before the model's load starts (it starts on the first render)
    marks.setdefault("torch loaded at first render", float("torch" in sys.modules))
    marks.setdefault("pyqtgraph loaded at first render", float("pyqtgraph" in sys.modules))
    open_model(path)
window.open_model = open_model_after_first_render
def mark(name):
    marks.setdefault(name, time.time())
    if name == "shown":
        probe.start()
    if name == "map":
        marks["map computed"] = float(window.session.map.computed)
    if {"shown", "model", "map"} <= set(marks):
        probe.stop()
        marks["max gap after first render"] = probe.max_gap_ms / 1e3
        print("MARKS " + " ".join(f"{k.replace(' ', '_')}={v:.6f}" for k, v in marks.items()), flush=True)
        QTimer.singleShot(0, window.close)
window.structureShown.connect(lambda structure: mark("shown"))
window.modelLoaded.connect(lambda model: mark("model"))
window.latent_panel.mapReady.connect(lambda latent_map: mark("map"))
QTimer.singleShot(120_000, window.close)
QApplication.instance().exec()
"""

LAUNCH_PHASES = (
    ("imports", "start -> app modules imported"),
    ("window", "start -> window built and shown"),
    ("shown", "start -> first render"),
    ("model", "start -> model ready"),
    ("map", "start -> latent map drawn"),
    ("max gap after first render", "event loop: max gap, first render -> map drawn"),
)


def launch_marks(settings: str, checkout: str | None = None) -> dict[str, float]:
    """Seconds from starting a new app process to each launch phase (and whether torch was loaded at first render).

    ``checkout``: run the app of that source tree (its ``core`` and root first on the path) instead of the installed one.
    """
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = os.pathsep.join([os.path.join(checkout, "core"), checkout])
    start = time.time()
    # Started in the checkout: ``python -c`` puts the working directory first on the path, so from
    # this repository's root the baseline would import this version's vaereg_studio.
    out = subprocess.run([sys.executable, "-c", CHILD, settings], capture_output=True, text=True, timeout=300, env=env, cwd=checkout)
    lines = [line for line in out.stdout.splitlines() if line.startswith("MARKS ")]
    if not lines:
        raise RuntimeError(f"the app did not show the sample and load the model:\n{out.stdout}\n{out.stderr}")
    marks = dict(item.split("=") for item in lines[0].split()[1:])
    timed = {"imports", "window", "shown", "model", "map"}
    return {k.replace("_", " "): float(v) - (start if k in timed else 0.0) for k, v in marks.items()}


FLOORS = (
    "import PySide6.QtWidgets, numpy, vtkmodules.qt.QVTKRenderWindowInteractor, vtkmodules.vtkRenderingOpenGL2, vtkmodules.vtkFiltersCore",
    *(("import PySide6.QtWidgets, numpy, pyvistaqt",) if importlib.util.find_spec("pyvistaqt") else ()),
)
"""What the first render cannot do without (Qt, NumPy, VTK's modules for a view and a contour), no app code;
and what it needed with pyvistaqt's views (pyvista, VTK and the matplotlib pyvista imports), where pyvistaqt
is still installed (it left the gui extra)."""


def import_floor(code: str) -> float:
    """Seconds from starting ``python`` to ``code`` (an import) done."""
    start = time.time()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    return time.time() - start


def launch_rows(launches: list[dict[str, float]], label: str = "") -> list[tuple[str, float]]:
    """Cold (first launch) and warm (median of the others) seconds of each phase; ``label`` prefixes the rows."""
    rows = []
    for key, name in LAUNCH_PHASES:
        rows.append((f"{label}{name}, cold (1st launch)", launches[0][key]))
        if len(launches) > 1:
            rows.append((f"{label}{name}, warm (median of {len(launches) - 1})", statistics.median(m[key] for m in launches[1:])))
    for name in ("torch", "pyqtgraph"):
        loaded = sum(m[f"{name} loaded at first render"] for m in launches)
        print(f"{label}{name} imported before the first render in {loaded:.0f} of {len(launches)} launches")
    computed = sum(m["map computed"] for m in launches)
    print(f"{label}latent map computed (encoding) in {computed:.0f} of {len(launches)} launches (0: the shipped map)")
    return rows


def in_process(frames: int) -> list[tuple[str, float]]:
    """Surface extraction and frame times in one window."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from vaereg_core.resources import default_sample_path
    from vaereg_studio.main_window import MainWindow
    from vaereg_studio.structure import read_structure, surface_mesh

    app = QApplication.instance() or QApplication([])
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        window = MainWindow(QSettings(os.path.join(folder, "s.ini"), QSettings.Format.IniFormat))
        window.show()
        app.processEvents()
        structure = read_structure(default_sample_path())
        for smooth in (True, False):
            t = time.perf_counter()
            surface = surface_mesh(structure.voxels, smooth)
            label = "smooth" if smooth else "blocky"
            rows.append((f"surface 51^3 {label} ({surface.GetNumberOfCells()} triangles)", time.perf_counter() - t))
            window.viewer.options.smooth = smooth
            window.show_structure(structure, surface)
            rows.append((f"frame 51^3 {label} {window.viewer.view.window_size}", median_render(window, frames)))
        window.viewer.set_slices_visible(True)
        window.viewer.set_opacity(0.3)
        rows.append(("frame 51^3 blocky + 3 slices, opacity 0.3", median_render(window, frames)))
        rows += candidate_latency(window, folder, frames)
        rows += event_loop_gaps(window)
        rows += cancel_latency(window)
        rows += session_reopening(window, folder)
        window.close()
    return rows


def candidate_latency(window, folder: str, repeats: int) -> list[tuple[str, float]]:
    """Median seconds to draw candidates: the core call, and "Find candidates" to all cards drawn."""
    from pathlib import Path

    from PySide6.QtCore import QEventLoop, QTimer

    from vaereg_core.inverse.design import candidates
    from vaereg_core.resources import default_model_path

    path = default_model_path()
    name = "bundled model"
    if not path.is_file():
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from inverse_helpers import save_tiny_model

        path, name = save_tiny_model(Path(folder) / "tiny.pt", components=3), "tiny random 19^3 model"

    def wait(signal) -> None:
        loop = QEventLoop()
        signal.connect(loop.quit)
        QTimer.singleShot(300_000, loop.quit)
        loop.exec()
        signal.disconnect(loop.quit)

    window.open_model(path)
    wait(window.modelLoaded)
    panel = window.target_panel
    target = panel.target()
    # The engine's own figure: the model loaded in this process (model_state.load: torch on all cores but one;
    # the app's model process serves on every core).
    from vaereg_studio import model_state

    model = model_state.load(path)
    rows = []
    for samples in (0, 2):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            found = candidates(model, target, samples_per_component=samples, reference=panel.training.properties)
            times.append(time.perf_counter() - t)
        rows.append((f"candidates() {name}, {len(found)} structures", statistics.median(times)))
        panel.samples.setValue(samples)
        drawn, shown = [], []
        for _ in range(max(1, repeats // 3)):
            t = time.perf_counter()
            panel.candidatesDrawn.connect(lambda _: drawn.append(time.perf_counter() - t))
            panel.find_candidates()
            wait(panel.candidatesShown)
            shown.append(time.perf_counter() - t)
            panel.candidatesDrawn.disconnect()
        rows.append((f"Find candidates -> {len(found)} cards drawn, predictions pending (app)", statistics.median(drawn)))
        rows.append((f"Find candidates -> {len(found)} cards drawn with predictions (app)", statistics.median(shown)))
    return rows


def event_loop_gaps(window) -> list[tuple[str, float]]:
    """Longest event-loop gap (s) while all candidates validate, and while two runs anneal."""
    from PySide6.QtWidgets import QApplication

    from vaereg_studio.latency import EventLoopProbe

    app = QApplication.instance()
    panel, latent = window.target_panel, window.latent_panel
    cards = panel.visible_cards()
    done: list[str] = []
    panel.validated.connect(lambda label, validation: done.append(label))
    probe = EventLoopProbe()
    probe.start()
    for card in cards:
        card.validate_button.click()
    while len(done) < len(cards):
        app.processEvents()
        time.sleep(0.001)
    probe.stop()
    rows = [(f"event loop: max gap while {len(cards)} candidates validate", probe.max_gap_ms / 1e3)]

    latent.iterations.setValue(25)
    runs = []
    for index in range(2):
        latent.start_combo.setCurrentIndex(index)
        latent.seed.setValue(index)
        runs.append(latent.start_run())
    probe.start()
    while not all(run.finished for run in runs):
        app.processEvents()
        time.sleep(0.001)
    probe.stop()
    rows.append(("event loop: max gap while 2 runs anneal (25 iterations)", probe.max_gap_ms / 1e3))
    return rows


def cancel_latency(window, repeats: int = 3) -> list[tuple[str, float]]:
    """Median seconds from an annealing run's Cancel click to the run reported finished."""
    from PySide6.QtWidgets import QApplication

    app, latent = QApplication.instance(), window.latent_panel
    latent.iterations.setValue(5000)
    times = []
    for index in range(repeats):
        latent.start_combo.setCurrentIndex(0)
        latent.seed.setValue(10 + index)
        run = latent.start_run()
        while run.row.bar.value() < 3:
            app.processEvents()
            time.sleep(0.001)
        t = time.perf_counter()
        run.row.cancel_button.click()
        while not run.finished or run.row.status_text != "cancelled":
            app.processEvents()
            time.sleep(0.001)
        times.append(time.perf_counter() - t)
    return [(f"annealing: Cancel -> run finished (median of {repeats})", statistics.median(times))]


def session_reopening(window, folder: str) -> list[tuple[str, float]]:
    """Seconds from opening a saved session (this window's cards) to all its cards drawn."""
    from pathlib import Path

    from PySide6.QtCore import QEventLoop, QTimer

    from vaereg_studio.session.session_file import SUFFIX

    panel = window.target_panel
    path = Path(folder) / f"cards{SUFFIX}"
    loop = QEventLoop()
    window.exported.connect(loop.quit)
    window.save_session(path)
    QTimer.singleShot(300_000, loop.quit)
    loop.exec()
    window.exported.disconnect(loop.quit)
    cards = len(window.session.candidates)
    t = time.perf_counter()
    window.open_session(path)
    loop = QEventLoop()
    panel.candidatesShown.connect(loop.quit)
    QTimer.singleShot(300_000, loop.quit)
    loop.exec()
    panel.candidatesShown.disconnect(loop.quit)
    return [(f"session with {cards} cards: Open Session -> cards drawn", time.perf_counter() - t)]


def median_render(window, frames: int) -> float:
    """Median seconds per ``render()``, the camera turning a little each frame."""
    times = []
    for _ in range(frames):
        window.viewer.view.camera.Azimuth(3)
        window.viewer.render()
        times.append(window.viewer.last_render_s)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launches", type=int, default=4)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--start-only", action="store_true", help="only the launch phases (start to first render and to model ready)")
    parser.add_argument("--baseline", metavar="DIR", help="another checkout (e.g. git archive of an older commit) launched alternately with this one")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run") and not os.environ.get("BENCH_APP_XVFB"):
        env = {**os.environ, "BENCH_APP_XVFB": "1"}
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", sys.executable, *sys.argv]
        sys.exit(subprocess.call(cmd, env=env))
    launches: list[dict[str, float]] = []
    baseline: list[dict[str, float]] = []
    floors: list[list[float]] = [[] for _ in FLOORS]
    with tempfile.TemporaryDirectory() as folder:
        settings = os.path.join(folder, "settings.ini")
        for _ in range(args.launches):  # alternately, so both see the same load
            launches.append(launch_marks(settings))
            if args.baseline:
                baseline.append(launch_marks(settings, args.baseline))
            for code, times in zip(FLOORS, floors):
                times.append(import_floor(code))
    rows = launch_rows(launches) if launches else []
    for code, times in zip(FLOORS, floors):
        if times:
            rows.append((f"floor: start -> {code[len('import '):]} (median of {len(times)})", statistics.median(times)))
    if baseline:
        rows += launch_rows(baseline, "baseline: ")
    if not args.start_only:
        rows += in_process(args.frames)
    width = max([58, *(len(name) + 2 for name, _ in rows)])
    print(f"{'measure':<{width}}{'ms':>9}")
    for name, seconds in rows:
        print(f"{name:<{width}}{1e3 * seconds:>9.0f}")


if __name__ == "__main__":
    main()
