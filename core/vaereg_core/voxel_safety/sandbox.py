"""Run a file reader in a child process: a crash, a hang or a memory blow-up of a library ends the child only.

VTK aborts the process on some damaged headers and the HDF5 library can
loop forever on a damaged object header; neither can be caught in Python.
:func:`run_reader` calls a reader function in a fresh interpreter (in a
frozen app, which has none: a ``multiprocessing`` spawn child, served by
the app's ``freeze_support()``) with the memory budget as an address-space
limit, waits at most a timeout (``$VAEREG_READ_TIMEOUT_S``, default 60 s
plus 1 s per 20 MB of file) and turns every way the child can fail into the
project's error. The child's
stdout and stderr (library noise) go to a file whose last lines end up in
the error message, never on the user's terminal.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaereg_core import errors
from vaereg_core.environment import positive_number
from vaereg_core.errors import CorruptVoxelFileError, VoxelFileError
from vaereg_core.voxel_safety.budget import max_voxel_bytes

TIMEOUT_ENV_VAR = "VAEREG_READ_TIMEOUT_S"
_ERROR_CLASSES = {
    cls.__name__: cls
    for cls in (VoxelFileError, errors.NotBinaryError, errors.CorruptVoxelFileError, errors.UnsupportedVoxelFileError, errors.VoxelFileTooLargeError)
}


def read_timeout(path: Path) -> float:
    """Seconds a read of ``path`` may take: ``$VAEREG_READ_TIMEOUT_S``, or 60 s plus 1 s per 20 MB."""
    value = positive_number(TIMEOUT_ENV_VAR, "seconds")
    return 60.0 + path.stat().st_size / 20e6 if value is None else value


def run_reader(path: Path, function: str, *args: Any) -> Any:
    """``module:function(path, *args)`` in a child process; its return value, or its error raised here.

    Parameters
    ----------
    path : Path
        The file read (named in errors, and sized for the timeout).
    function : str
        ``"package.module:name"`` of a module-level function; it may raise
        :class:`~vaereg_core.errors.VoxelFileError` (or a subclass), which is
        raised again here with the same class and text.

    Raises
    ------
    CorruptVoxelFileError
        The child crashed (a signal), ran out of memory, or did not answer in time.
    VoxelFileError
        What the reader raised.
    """
    timeout = read_timeout(path)
    handle, log_name = tempfile.mkstemp(prefix="vaereg-read-", suffix=".log")
    os.close(handle)
    log = Path(log_name)
    request = (log_name, function, path, args)
    try:
        # A fresh interpreter runs no code of the caller's main script (a script without the
        # __main__ guard stays correct); a frozen app has no interpreter, but has that guard.
        run = _in_multiprocessing_child if getattr(sys, "frozen", False) else _in_interpreter_child
        answer, exitcode, timed_out = run(request, timeout)
        if answer is None:
            raise CorruptVoxelFileError(path, f"{_death(exitcode, timed_out, timeout)}{_tail(log)}")
    finally:
        log.unlink(missing_ok=True)
    kind, value = answer
    if kind == "ok":
        return value
    name, where, reason, needs = value
    raise _rebuild(_ERROR_CLASSES.get(name, VoxelFileError), where, reason, needs)


def _in_interpreter_child(request: tuple, timeout: float) -> tuple[Any, int | None, bool]:
    """Run the request in ``python -c``: (answer or None, exit code, whether it timed out)."""
    command = [sys.executable, "-c", "from vaereg_core.voxel_safety.sandbox import main; main()"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # the caller's import path
    with open(request[0], "ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env)
    try:
        output, _ = process.communicate(pickle.dumps(request), timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return None, process.returncode, True
    return (pickle.loads(output) if output else None), process.returncode, False


def _in_multiprocessing_child(request: tuple, timeout: float) -> tuple[Any, int | None, bool]:
    """Run the request in a ``multiprocessing`` (spawn) child: (answer or None, exit code, whether it timed out)."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_serve, args=(request, send.send), daemon=True)
    process.start()
    send.close()
    answer, timed_out = None, False
    try:
        if receive.poll(timeout):
            answer = receive.recv()
        else:
            timed_out = True
    except EOFError:  # the child died before answering
        process.join(5)
    finally:
        if process.is_alive() and answer is None:
            process.kill()
        process.join()
        receive.close()
    return answer, process.exitcode, timed_out


def _death(exitcode: int | None, timed_out: bool, timeout: float) -> str:
    if timed_out:
        return f"reading it did not finish in {timeout:.0f} s (the file is corrupt; a slow disk may need {TIMEOUT_ENV_VAR})"
    if exitcode is not None and exitcode < 0:
        return f"the reader crashed on it ({signal.Signals(-exitcode).name}): the file is corrupt"
    return f"the reader ended without an answer (exit status {exitcode}): the file is corrupt"


def _tail(log: Path, chars: int = 300) -> str:
    """What the child printed, as one line: what the library said before failing."""
    with open(log, "rb") as f:
        f.seek(max(f.seek(0, os.SEEK_END) - 20000, 0))
        text = f.read().decode(errors="replace")
    said = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return f"; the library said: {said[-chars:]}" if said else ""


def _rebuild(cls: type[VoxelFileError], path: str, reason: str, needs: str | None) -> VoxelFileError:
    """An error of class ``cls`` with exactly the child's text (subclasses compose their own in ``__init__``)."""
    error = cls.__new__(cls)
    VoxelFileError.__init__(error, path, reason)
    if needs is not None:
        error.needs = needs  # type: ignore[attr-defined]
    return error


def main() -> None:
    """Entry of the ``python -c`` child: the request comes on stdin, the pickled answer goes to stdout."""
    answers = os.fdopen(os.dup(1), "wb")
    request = pickle.load(sys.stdin.buffer)
    _serve(request, lambda answer: pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL))
    answers.close()


def _serve(request: tuple, send: Callable[[Any], None]) -> None:
    """In the child: silence stdout/stderr into the log, bound memory, read, send the answer."""
    log, function, path, args = request
    log_fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    for fd in (1, 2):
        os.dup2(log_fd, fd)
    os.close(log_fd)
    _limit_address_space()
    module, name = function.split(":")
    try:
        send(("ok", getattr(importlib.import_module(module), name)(path, *args)))
    except VoxelFileError as exc:
        send(("error", (type(exc).__name__, exc.path, exc.reason, getattr(exc, "needs", None))))
    except MemoryError:
        send(("error", ("CorruptVoxelFileError", os.fspath(path), "reading it needs more memory than its declared size (corrupt)", None)))
    except Exception as exc:  # noqa: BLE001 (every library has its own errors for a corrupt file)
        reason = f"cannot read {path.suffix} file, it is truncated or corrupt ({type(exc).__name__}: {str(exc)[:200]})"
        send(("error", ("CorruptVoxelFileError", os.fspath(path), reason, None)))


def _limit_address_space() -> None:
    """Cap the child's address space at what it has plus room for imports and four times the budget (POSIX)."""
    with contextlib.suppress(ImportError, ValueError, OSError, StopIteration):
        import resource

        with open("/proc/self/status") as status:
            now = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = now + 2_000_000_000 + 4 * max_voxel_bytes()
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        if soft == resource.RLIM_INFINITY or limit < soft:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
