"""Saving and reopening a design session: one zip of ``session.json`` and ``.npy`` arrays, versioned, no pickle.

The JSON holds the target, the candidates with their validations, the design
runs (results, trajectories, designs) and the annealing runs (settings,
trajectories, best states), and the view options; every array (voxels,
latent vectors, predictions) is an ``.npy`` member read with
``allow_pickle=False``. Engine records are written as their dataclass fields
under a type name, and only the types in :data:`RECORD_TYPES` are rebuilt:
the file is data, never code. The surfaces the cards draw are not stored;
they are made again on opening. A design run's explored states (one voxel
array each) are not kept either: its trajectory, designs and final solves are.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vaereg_core.errors import VaeRegError
from vaereg_core.inverse.annealing import AnnealResult, AnnealSettings, State
from vaereg_core.inverse.design import Candidate, Refinement, Validation
from vaereg_core.inverse.feasibility import Feasibility
from vaereg_core.inverse.targets import Target
from vaereg_core.inverse.verified import Design, DesignResult, DesignSettings, VerifiedState
from vaereg_core.voxel_io import atomic_paths
from vaereg_studio.design_worker import DesignCandidate

FORMAT = "vaereg-studio-session"
VERSION = 1
MANIFEST = "session.json"
MAX_UNPACKED_BYTES = 4 << 30  # a session holds tens of structures; more than this is a damaged or hostile file
SUFFIX = ".vaeregsession"

RECORD_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (Target, Candidate, DesignCandidate, Validation, Feasibility, DesignSettings, DesignResult, Design, VerifiedState,
                AnnealSettings, AnnealResult, State, Refinement)
}
"""The engine records a session file may rebuild, by name."""


class SessionFileError(VaeRegError):
    """A session file that cannot be read: damaged, not a session, or of an unknown version."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


@dataclass
class SessionDocument:
    """What a session file holds, in plain records (see :mod:`vaereg_studio.session.session_file`).

    Attributes
    ----------
    model : dict
        ``name``, ``checksum`` and ``path`` of the model the session was made with.
    content : dict
        ``target``, ``search_seed``, ``candidates``, ``design_runs``, ``anneal_runs``
        and ``view_options``, as :func:`document_of` writes them.
    """

    model: dict[str, str]
    content: dict[str, Any]


def write_session(path: Path, document: SessionDocument, overwrite: bool = False) -> Path:
    """Write ``document`` to ``path`` atomically (the old file or the new one, never half of one).

    Raises
    ------
    vaereg_core.voxel_io.VoxelFileError
        ``path`` exists and not ``overwrite``, or its folder is missing or read-only.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    manifest = {"format": FORMAT, "version": VERSION, "model": document.model, "content": _encode(document.content, arrays)}
    with atomic_paths(path, overwrite=overwrite) as (temp,):
        with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, json.dumps(manifest, indent=1))
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.save(buffer, array, allow_pickle=False)
                archive.writestr(f"arrays/{name}.npy", buffer.getvalue())
    return path


def read_session(path: Path) -> SessionDocument:
    """Read a session file.

    Raises
    ------
    SessionFileError
        Missing, damaged or foreign file, or a format version this app does not read.
    """
    path = Path(path)
    if not path.is_file():
        raise SessionFileError(path, "file does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED_BYTES:
                raise SessionFileError(path, f"unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB; not a session this app wrote")
            manifest = json.loads(archive.read(MANIFEST))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise SessionFileError(path, "not a VAEReg Studio session (no session manifest)")
            if manifest.get("version") != VERSION:
                raise SessionFileError(path, f"session format version {manifest.get('version')!r}; this app reads version {VERSION}")

            def array(name: str) -> np.ndarray:
                with archive.open(f"arrays/{name}.npy") as member:
                    return np.load(io.BytesIO(member.read()), allow_pickle=False)

            return SessionDocument(dict(manifest["model"]), _decode(manifest["content"], array))
    except SessionFileError:
        raise
    except KeyError as exc:
        raise SessionFileError(path, f"damaged session: {exc.args[0]} is missing") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise SessionFileError(path, f"damaged session (not a readable zip archive: {exc})") from None
    except (ValueError, TypeError, AttributeError, OSError, RecursionError) as exc:
        raise SessionFileError(path, f"damaged session ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------------- values <-> JSON


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON values; arrays go to ``arrays`` and are referred to by name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray):
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {"array": name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return {"path": str(value)}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, dict):
        return {"dict": [[str(k), _encode(v, arrays)] for k, v in value.items()]}
    name = type(value).__name__
    if dataclasses.is_dataclass(value) and RECORD_TYPES.get(name) is type(value):
        fields = {f.name: _encode(getattr(value, f.name), arrays) for f in dataclasses.fields(value) if f.init}
        return {"record": name, "fields": fields}
    raise TypeError(f"a session cannot store a {name}")


def _decode(value: Any, array: Any) -> Any:
    """The inverse of :func:`_encode`; ``array(name)`` reads a stored array."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_decode(v, array) for v in value]
    if not isinstance(value, dict) or len(value) not in (1, 2):
        raise ValueError(f"unexpected value {str(value)[:60]!r}")
    if "array" in value:
        return array(str(value["array"]))
    if "path" in value:
        return Path(str(value["path"]))
    if "tuple" in value:
        return tuple(_decode(v, array) for v in value["tuple"])
    if "dict" in value:
        return {str(k): _decode(v, array) for k, v in value["dict"]}
    if "record" in value:
        cls = RECORD_TYPES.get(value["record"])
        if cls is None:
            raise ValueError(f"unknown record type {str(value['record'])[:40]!r}")
        return cls(**{str(k): _decode(v, array) for k, v in value["fields"].items()})
    raise ValueError(f"unexpected value {str(value)[:60]!r}")
