"""Data + sidecar pairs (``a.raw`` + ``a.raw.json``, ``a.npy`` + ``a.npy.json``) that no kill can split.

Two files cannot be renamed at once, so the sidecar names its data: it
records the data's size and SHA-256 (:func:`stamp`). A write then goes

1. data to a temporary file, flushed to disk;
2. sidecar (with the new data's checksum) to a temporary file, flushed;
3. rename data onto ``a.raw`` -- the commit point;
4. rename sidecar onto ``a.raw.json``; flush the folder.

Killed before 3, the old pair is untouched (the temporary files belong to a
dead writer and are removed by the next write). Killed between 3 and 4,
``a.raw`` is new and ``a.raw.json`` old: their checksums disagree, and the
sidecar that belongs to the data is the writer's temporary one, which
:func:`sidecar_for` finds by its checksum (the next write renames it into
place, :func:`recover`). After 4, the new pair. A reader therefore always
gets the old pair or the new one, never new voxels with old properties. A
sidecar without a checksum (older files, other tools) is taken as it is.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from vaereg_core.atomic_files import is_dead_writer, remove_dead_writers_files, temp_files
from vaereg_core.errors import CorruptVoxelFileError, VoxelFileError
from vaereg_core.voxel_safety.metadata import parse_json

CHECKSUM_KEY = "data_sha256"
SIZE_KEY = "data_bytes"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def stamp(record: dict[str, Any], data: Path) -> dict[str, Any]:
    """``record`` plus the size and checksum of ``data``, the file it describes."""
    return {**record, SIZE_KEY: data.stat().st_size, CHECKSUM_KEY: sha256_of(data)}


def unstamped(record: Any) -> Any:
    """``record`` without the keys :func:`stamp` added."""
    if not isinstance(record, dict):
        return record
    return {k: v for k, v in record.items() if k not in (CHECKSUM_KEY, SIZE_KEY)}


class _Data:
    """The data file's size and (computed once, when first needed) checksum."""

    def __init__(self, path: Path) -> None:
        self.path, self.size, self._sha = path, path.stat().st_size, None

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether a stamped sidecar describes these data."""
        if record.get(SIZE_KEY) != self.size:
            return False
        if self._sha is None:
            self._sha = sha256_of(self.path)
        return record[CHECKSUM_KEY] == self._sha


def sidecar_for(data: Path, sidecar: Path, canonical: Path) -> Any | None:
    """The parsed sidecar that belongs to ``data``; None if there is none.

    Parameters
    ----------
    data : Path
        The data file.
    sidecar : Path
        The sidecar found beside it (it may not exist).
    canonical : Path
        The name writers give the sidecar (``a.raw.json``), whose temporary
        files hold a sidecar renamed after its data by a writer that stopped.

    Raises
    ------
    CorruptVoxelFileError
        A stamped sidecar that does not describe the data, and no temporary
        one that does.
    """
    facts = _Data(data)
    record = parse_json(sidecar, sidecar.read_bytes(), what="the sidecar") if sidecar.exists() else None
    if _stamped(record) and facts.matches(record):
        return record
    for temp, _ in temp_files(canonical):
        candidate = _parse_quietly(temp)
        if _stamped(candidate) and facts.matches(candidate):
            return candidate
    if record is None or not _stamped(record):
        return record
    differs = f"size is {facts.size} bytes, the sidecar says {record.get(SIZE_KEY)}" if record.get(SIZE_KEY) != facts.size else "its checksum differs"
    raise CorruptVoxelFileError(
        data,
        f"does not match its sidecar {sidecar.name}: {differs} (truncated or wrong sidecar: "
        "a write was interrupted before the new format, or one file was replaced by another tool)",
    )


def recover(data: Path, sidecar: Path) -> None:
    """Finish the pair writes of dead writers, then remove their temporary files.

    A dead writer's temporary sidecar that describes the current data was
    written by a writer killed between its two renames: renaming it into
    place completes that write.
    """
    if data.exists():
        facts = _Data(data)
        current = _parse_quietly(sidecar) if sidecar.exists() else None
        if not (_stamped(current) and facts.matches(current)):
            for temp, pid in temp_files(sidecar):
                candidate = _parse_quietly(temp)
                if is_dead_writer(pid) and _stamped(candidate) and facts.matches(candidate):
                    os.replace(temp, sidecar)
                    break
    remove_dead_writers_files(data)
    remove_dead_writers_files(sidecar)


def _stamped(record: Any) -> bool:
    return isinstance(record, dict) and CHECKSUM_KEY in record


def _parse_quietly(path: Path) -> Any:
    """A sidecar's JSON, or None when it is unreadable (a temporary file cut short by a kill)."""
    try:
        return parse_json(path, path.read_bytes())
    except (OSError, VoxelFileError):
        return None
