"""Exception types that carry the file or object they are about."""

from __future__ import annotations

import os


class VaeRegError(Exception):
    """Base class of every error this project raises on purpose."""


def one_line(exc: BaseException) -> str:
    """An exception as the one line a user is shown: our own errors' message, any other with its type.

    What a child process sends back instead of the exception itself: exceptions
    with their own constructor arguments do not always unpickle.

    >>> one_line(VaeRegError("the solver did not converge")), one_line(KeyError("C11"))
    ('the solver did not converge', "KeyError: 'C11'")
    """
    return str(exc) if isinstance(exc, VaeRegError) else f"{type(exc).__name__}: {exc}"


class FileError(VaeRegError):
    """A file could not be read or written.

    Parameters
    ----------
    path : str or os.PathLike
        The file concerned.
    reason : str
        What is wrong, in words a user can act on.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class VoxelFileError(FileError):
    """A voxel file could not be read or written."""


class NotBinaryError(VoxelFileError):
    """The file holds grey-scale data; a threshold must be given explicitly."""


class CorruptVoxelFileError(VoxelFileError):
    """The file is truncated, damaged or inconsistent (its header contradicts its size or itself)."""


class UnsupportedVoxelFileError(VoxelFileError):
    """A valid file that this installation cannot read (a codec, a layout, a feature refused on purpose).

    Parameters
    ----------
    path : str or os.PathLike
        The file concerned.
    reason : str
        What is unsupported.
    needs : str, optional
        What would make it readable (a package such as ``imagecodecs``); the
        message then reads ``unsupported (needs imagecodecs)``.
    """

    def __init__(self, path: str | os.PathLike, reason: str, needs: str | None = None) -> None:
        self.needs = needs
        super().__init__(path, f"{reason}: unsupported (needs {needs})" if needs else f"{reason}: unsupported")


class VoxelFileTooLargeError(VoxelFileError):
    """The file declares more data than the memory budget allows (checked before anything is allocated)."""


class PhysicsError(VaeRegError):
    """Invalid input to the homogenisation solver (structure or phase parameters)."""


class NotConvergedError(PhysicsError):
    """The solver stopped at its iteration limit above the requested tolerance.

    Parameters
    ----------
    load_case : str
        Which macroscopic strain was being solved (e.g. ``"e11"``).
    iterations : int
        Iterations done.
    residual : float
        Relative residual reached.
    tol : float
        Relative residual requested.
    """

    def __init__(self, load_case: str, iterations: int, residual: float, tol: float) -> None:
        self.load_case, self.iterations, self.residual, self.tol = load_case, iterations, residual, tol
        super().__init__(
            f"load case {load_case}: not converged after {iterations} iterations "
            f"(relative residual {residual:.3e} > tolerance {tol:.1e})"
        )


class ModelFileError(FileError):
    """A model checkpoint could not be loaded (missing, truncated, foreign, wrong version)."""


class Cancelled(VaeRegError):
    """A long computation was stopped by its cancel token."""


class SolverCancelled(Cancelled):
    """A physics solve was stopped by its cancel callback.

    Parameters
    ----------
    iterations : int
        Iterations done before stopping.
    """

    def __init__(self, iterations: int) -> None:
        self.iterations = iterations
        super().__init__(f"homogenisation cancelled after {iterations} iterations")
