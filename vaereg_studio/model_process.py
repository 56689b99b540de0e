"""The app's model in a child process: torch is imported and the weights loaded beside the window, not in it.

``import torch`` takes 2.5-3.5 s on the 2-core machine and holds the
interpreter lock most of that time, so in the UI process it could only follow
the first picture (model ready 5.6 s after start). A child started as the app
starts imports it on the other core while the window is built and the sample
drawn; the UI process never imports torch at all. The networks' passes then
run in the child too, so they never hold the UI process's lock either.

The UI side (:class:`ModelProcess`) is called from worker threads:
:meth:`ModelProcess.call` sends a module-level function and its arguments and
waits for the answer; the child runs ``function(model, report, cancel, *args)``
on a thread of its own (several calls run side by side, as they did on the UI
process's workers) and sends back its progress reports and its result. What
crosses the pipe is the app's own values (targets, settings, arrays, results)
between its own processes, never a user's file.

This module is what the child imports: it stays free of Qt, VTK and torch.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vaereg_core.errors import Cancelled, ModelFileError, VaeRegError, one_line
from vaereg_core.physics.phases import Material

CALL_THREADS = 4
"""Calls the child runs at once (two annealing runs, a decode and a prediction: the app's worst case)."""
CHILD_NICENESS = 3
"""The child's priority below the UI's once its model is loaded: its torch threads take every core (six cards'
decoding and predictions 1.7 s, against 2.6 s on one thread), and the window is served first (event-loop gaps
under 100 ms while two runs anneal; 118 ms at the same priority). Loading itself runs at the UI's priority."""
POLL_S = 0.05
"""How often a waiting call looks at its cancel flag."""


@dataclass(frozen=True)
class ModelInfo:
    """What the UI reads of a loaded model (plain values, sent once by the child).

    Attributes
    ----------
    property_names : tuple of str
        Predicted constants, in output order.
    units : str
    ranges : dict
        {name: (min, max)} of each property in the training data (GPa).
    grid : int
        Edge of the structures the model takes.
    latent_dim : int
    is_generative : bool
        Whether it has a latent space and a prior (a Reg-only model has neither).
    material : Material
        The phases of its training data.
    checksum : str
        Its weights' checksum (sessions and latent maps are tied to it).
    device : str
        Torch device it runs on (``cpu``, ``cuda:0``).
    has_forward : bool
        Whether a forward ensemble answers its predictions.
    forward_description : str
        What answers its predictions, in one line.
    description : str
        One paragraph naming it (:func:`describe`).
    recorded_data : str or None
        The dataset file it records it was trained on.
    """

    property_names: tuple[str, ...]
    units: str
    ranges: dict[str, tuple[float, float]]
    grid: int
    latent_dim: int
    is_generative: bool
    material: Material
    checksum: str
    device: str
    has_forward: bool
    forward_description: str
    description: str
    recorded_data: str | None

    @classmethod
    def of(cls, model: Any, path: Path) -> ModelInfo:
        """The info of a :class:`vaereg_core.model.inference.LoadedModel` loaded from ``path``."""
        data = model.file.metadata.get("data")
        return cls(
            tuple(model.property_names), str(model.units), {k: (float(lo), float(hi)) for k, (lo, hi) in model.ranges.items()},
            int(model.grid), int(model.latent_dim), bool(model.is_generative), model.material, str(model.file.checksum),
            str(model.device), model.forward is not None, model.describe_forward(), describe(model, path),
            None if data is None else str(data),
        )


def describe(model: Any, path: Path) -> str:
    """One paragraph naming the model: file, kind, properties, K, latent size, grid, training data and its material."""
    from vaereg_core.physics.phases import describe as describe_material

    config = model.file.config
    data = model.file.metadata.get("data", "unrecorded data")
    parts = [
        f"{path.name} ({config.name}, {model.file.kind})",
        f"predicts {', '.join(model.property_names)} in {model.units}",
        f"{config.model.prior} prior, K = {config.model.n_components}",
        f"latent dimension {model.latent_dim}, grid {model.grid}³",
        f"trained on {Path(str(data)).name} (subset {config.train.subset}) for {describe_material(model.material)}",
        f"predictions by the {model.describe_forward()}",
    ]
    return "; ".join(parts) + "."


# ---------------------------------------------------------------------- child


def _serve(conn: Any, path: str, device: str, threads: int) -> None:
    """Child-process entry: load the model, say ``("ready", ModelInfo)`` (or ``("failed", text)``), then answer calls.

    Requests: ``("call", id, function, args)`` and ``("cancel", id)``. Answers:
    ``("progress", id, message)``, then ``("result", id, value)``,
    ``("cancelled", id, text)`` or ``("error", id, text)``. The child ends
    when the app's end of the pipe closes, which it does when the app ends in
    any way (its ``ready`` then fails to send, or its next read sees the end).
    """
    try:
        import torch

        from vaereg_core.model.inference import load_model

        torch.set_num_threads(max(1, threads - 1))  # the loading leaves a core to the window being built
        model = load_model(path, device)
        info = ModelInfo.of(model, Path(path))
    except BaseException as exc:  # noqa: BLE001 (every failure goes back as a message)
        conn.send(("failed", one_line(exc)))
        return
    lock = threading.Lock()
    flags: dict[int, threading.Event] = {}

    def send(message: tuple) -> None:
        with lock:
            conn.send(message)

    def run(request: int, function: Callable, args: tuple, flag: threading.Event) -> None:
        try:
            value = function(model, lambda message: send(("progress", request, message)), flag.is_set, *args)
            answer = ("result", request, value)
        except Cancelled as exc:
            answer = ("cancelled", request, str(exc))
        except BaseException as exc:  # noqa: BLE001
            answer = ("error", request, one_line(exc))
        flags.pop(request, None)
        try:
            send(answer)
        except Exception as exc:  # noqa: BLE001 (an answer that does not pickle is an error of that call)
            try:
                send(("error", request, f"the model process could not send its answer ({one_line(exc)})"))
            except OSError:
                os._exit(0)

    torch.set_num_threads(threads)
    _lower_priority(CHILD_NICENESS)  # after the loading, which the app waits for: then the window comes first
    try:
        send(("ready", info))
    except OSError:  # the app is gone
        return
    pool = ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="model-call")
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the app closed the pipe or ended: running calls have nobody to answer
            os._exit(0)
        if message[0] == "call":
            _, request, function, args = message
            flags[request] = flag = threading.Event()
            pool.submit(run, request, function, args, flag)
        elif message[0] == "cancel" and (flag := flags.get(message[1])) is not None:
            flag.set()


def _lower_priority(niceness: int) -> None:
    """Lower every thread of this process by ``niceness`` (Linux: a nice value is a thread's); threads started later inherit it."""
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: this thread, which starts the calls' threads
        os.nice(niceness)
        return
    for tid in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
        except OSError:  # the thread has ended
            pass


# ---------------------------------------------------------------------- UI side


class ModelProcess:
    """A model file loaded in a child process; :meth:`call` runs work on it (from worker threads).

    Parameters
    ----------
    path : path
        The model file.
    device : str
        Torch device (``auto``: CUDA or MPS when there is one).
    threads : int, optional
        Torch threads of the child (default: one per core; the child runs below the UI's priority).
    """

    def __init__(self, path: str | os.PathLike, device: str = "auto", threads: int | None = None) -> None:
        self.path = Path(path)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        context = multiprocessing.get_context("spawn")  # never fork the Qt process
        self._conn, child_end = context.Pipe(duplex=True)
        self._process = context.Process(target=_serve, args=(child_end, str(self.path), device, threads or cores),
                                        daemon=True, name="vaereg-model")
        self._process.start()
        child_end.close()
        self._send_lock = threading.Lock()
        self._pending: dict[int, queue.SimpleQueue] = {}
        self._pending_lock = threading.Lock()
        self._ids = itertools.count()
        self._ready = threading.Event()
        self._info: ModelInfo | None = None
        self._failure: str | None = None
        self._ended: str | None = None
        threading.Thread(target=self._read, name="vaereg-model-reader", daemon=True).start()

    def wait_ready(self, cancel: Callable[[], bool] = lambda: False) -> ModelInfo:
        """The model's info once it is loaded (call from a worker thread).

        Raises
        ------
        ModelFileError
            The file could not be loaded (the child's message), or the child ended first.
        Cancelled
            ``cancel()`` became true first (the process is closed).
        """
        while not self._ready.wait(POLL_S):
            if cancel():
                self.close()
                raise Cancelled("model loading cancelled")
        if self._info is None:
            raise ModelFileError(self.path, self._failure or "the model process ended before the model was loaded")
        return self._info

    @property
    def info(self) -> ModelInfo:
        """The loaded model's info (after :meth:`wait_ready`)."""
        if self._info is None:
            raise RuntimeError("the model is not loaded yet")
        return self._info

    def call(self, function: Callable[..., Any], *args: Any, progress: Callable[[Any], None] | None = None,
             cancel: Callable[[], bool] = lambda: False, keep_partial: bool = False) -> Any:
        """``function(model, report, cancel, *args)`` in the child; its return value (call from a worker thread).

        ``function`` is module-level (the child imports it by name), the
        arguments and the result picklable; ``progress`` gets each message the
        function reports, on this thread. With ``keep_partial``, a cancel is
        passed on and the function's own answer awaited (an annealing run
        returns its best state so far); without, the call raises at once.

        Raises
        ------
        Cancelled
            ``cancel()`` became true (without ``keep_partial``: the child is told to stop, and not waited for), or the
            function raised it.
        VaeRegError
            The function failed (its message), or the model process has ended.
        """
        self.wait_ready()
        request, answers = next(self._ids), queue.SimpleQueue()
        with self._pending_lock:
            if self._ended is not None:
                raise VaeRegError(self._ended)
            self._pending[request] = answers
        try:
            self._send(("call", request, function, args))
            told = False
            while True:
                if not told and cancel():
                    self._send(("cancel", request))
                    told = True
                    if not keep_partial:
                        raise Cancelled("cancelled")
                try:
                    kind, value = answers.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if kind == "progress":
                    if progress is not None:
                        progress(value)
                elif kind == "result":
                    return value
                elif kind == "cancelled":
                    raise Cancelled(value)
                else:
                    raise VaeRegError(value)
        finally:
            with self._pending_lock:
                self._pending.pop(request, None)

    def close(self) -> None:
        """End the child (its running calls end with it)."""
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=1)  # SIGKILL: gone in milliseconds
        self._conn.close()

    @property
    def alive(self) -> bool:
        """Whether the child is still running."""
        return self._process.is_alive()

    def _send(self, message: tuple) -> None:
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, ValueError):  # the child is gone (the reader says why to every waiting call)
            raise VaeRegError(self._ended or "the model process has ended") from None

    def _read(self) -> None:
        """Reader thread: the loading's outcome, then each answer to the call it belongs to."""
        try:
            kind, value = self._conn.recv()
            if kind == "ready":
                self._info = value
            else:
                self._failure = value
        except (EOFError, OSError):
            pass
        finally:
            self._ready.set()
        while self._info is not None:
            try:
                kind, request, value = self._conn.recv()
            except (EOFError, OSError):
                break
            with self._pending_lock:
                answers = self._pending.get(request)
            if answers is not None:
                answers.put((kind, value))
        self._process.join(timeout=1)
        code = self._process.exitcode
        with self._pending_lock:
            self._ended = f"the model process ended (exit code {code}); open the model again" if code else "the model process has ended"
            for answers in self._pending.values():
                answers.put(("error", self._ended))


_started: dict[Path, ModelProcess] = {}
_started_lock = threading.Lock()


def start_early(path: str | os.PathLike) -> None:
    """Start loading ``path`` now, as the app starts (:func:`open_model` then takes this process)."""
    key = Path(path).resolve()
    with _started_lock:
        if key not in _started:
            _started[key] = ModelProcess(path)


def close_unclaimed() -> None:
    """End the processes :func:`start_early` started that no :func:`open_model` took."""
    with _started_lock:
        unclaimed = list(_started.values())
        _started.clear()
    for process in unclaimed:
        process.close()


def open_model(path: str | os.PathLike) -> ModelProcess:
    """A process loading ``path``: the one :func:`start_early` started for it, else a new one."""
    with _started_lock:
        early = _started.pop(Path(path).resolve(), None)
    return early if early is not None else ModelProcess(path)


# ---------------------------------------------------------------------- the work the app sends (run in the child)


def latent_cache_paths(model_path: Path, cache_dir: Path) -> list[Path]:
    """Where a model's latent map is looked for and kept: beside the model, then in ``cache_dir``.

    The cache-dir name carries a hash of the model's full path so maps of
    models with the same file name do not mix.
    """
    model_path = Path(model_path)
    tag = hashlib.sha256(str(model_path.resolve()).encode()).hexdigest()[:10]
    return [model_path.with_name(model_path.stem + ".latents.npz"), Path(cache_dir) / f"{model_path.stem}-{tag}.latents.npz"]


def decode_candidates(model: Any, report: Callable, cancel: Callable[[], bool], target: Any, samples_per_component: int, seed: int,
                      reference: np.ndarray | None) -> list:
    """:func:`vaereg_core.inverse.design.candidate_structures` for ``target``: decoded, not predicted yet."""
    from vaereg_core.inverse.design import candidate_structures

    return candidate_structures(model, target, samples_per_component=samples_per_component, seed=seed, reference=reference)


def predict(model: Any, report: Callable, cancel: Callable[[], bool], voxels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's prediction (mean, std GPa) for one structure or a batch."""
    return model.predict(voxels)


def decode(model: Any, report: Callable, cancel: Callable[[], bool], z: np.ndarray) -> np.ndarray:
    """The binary structure of a latent vector."""
    return model.decode(z, binary=True)


def anneal(model: Any, report: Callable, cancel: Callable[[], bool], target: Any, start: np.ndarray, settings: Any, prior_weight: float,
           reference: np.ndarray | None) -> Any:
    """:func:`vaereg_core.inverse.design.refine` from ``start`` (not validated); reports ``(iteration, best value, accepted z or None)``.

    A state is reported as accepted once, when the chain first moves to it
    (``current`` changes), so the UI can draw the trajectory.
    """
    from vaereg_core.inverse.design import refine

    last = None

    def progress(iteration: int, total: int, current: Any, best: Any) -> None:
        nonlocal last
        accepted = current.z if current.iteration > 0 and current is not last else None
        last = current
        report((iteration, best.value, accepted))

    return refine(model, target, start, settings, prior_weight=prior_weight, reference=reference, progress=progress, cancel=cancel,
                  validate_best=False)


def compute_map(model: Any, report: Callable, cancel: Callable[[], bool], model_path: Path, cache_dir: Path, max_structures: int,
                dataset_path: Path | None = None) -> tuple[Any, Path | None]:
    """Encode the training split, fit the map and store it beside the model (else in ``cache_dir``); reports ``(done, total)``.

    Returns the map and where it was saved (``None`` if nowhere was writable).

    Raises
    ------
    Cancelled
        When ``cancel`` was set (checked after each batch).
    vaereg_core.dataset.table.DatasetError
        No usable training data.
    """
    from vaereg_core.dataset import MicrostructureDataset
    from vaereg_core.dataset.table import DatasetError
    from vaereg_core.inverse.latent_map import latent_map
    from vaereg_core.resources import default_dataset_path

    path = default_dataset_path() if dataset_path is None else Path(dataset_path)
    train = model.file.config.train  # the map shows the data the model was trained on (its subset and split)
    dataset = MicrostructureDataset(path, split="train", properties=model.property_names, subset=train.subset, split_seed=train.split_seed)
    if dataset.table.recipe.size != model.grid:
        raise DatasetError(path, f"its structures are {dataset.table.recipe.size}³ but the model takes {model.grid}³")
    if len(dataset) == 0:
        raise DatasetError(path, "its training split is empty")

    def encoded(done: int, total: int) -> None:
        if cancel():
            raise Cancelled("latent map cancelled")
        report((done, total))

    result = latent_map(model, dataset, max_structures=max_structures, progress=encoded)
    for target in latent_cache_paths(model_path, cache_dir):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.access(target.parent, os.W_OK):
                return result, result.save(target)
        except (OSError, VaeRegError):
            continue  # read-only folder: try the next place
    return result, None
