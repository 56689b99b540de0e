"""Files written whole or not at all, and the clean-up after writers that were killed.

A writer creates a temporary file beside its target, named
``.{target name}.{pid}.{random}.tmp{suffix}`` (the dataset table uses
``.{target name}.{pid}.tmp``), and renames it onto the target when complete,
so a reader sees the old file or the new one, never half of one. A writer
killed mid-write (SIGKILL, power loss) leaves its temporary file behind: the
process id in the name tells a later writer that its owner is dead, and
:func:`remove_dead_writers_files` deletes it. :func:`atomic_paths` is the one
way every writer of the project does this.

Examples
--------
>>> import tempfile
>>> target = Path(tempfile.mkdtemp()) / "notes.txt"
>>> with atomic_paths(target) as (temp,):
...     _ = temp.write_text("complete")
>>> target.read_text(), [p.name for p in target.parent.iterdir()]
('complete', ['notes.txt'])
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


def create_temp(target: Path) -> Path:
    """Create an empty, uniquely named temporary file beside ``target``; it keeps the target's suffix.

    Unlike :func:`tempfile.mkstemp` (mode 0600) the mode honours the umask, so
    the renamed file has the permissions of any other file the user writes.
    Some writers pick the format from the suffix, hence it is kept last.

    Raises
    ------
    FileExistsError
        No free name after 100 tries (never in practice).
    """
    for _ in range(100):
        temp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{target.suffix}"
        try:
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return temp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {target}")


@contextlib.contextmanager
def atomic_paths(*targets: Path) -> Iterator[list[Path]]:
    """Temporary paths beside the targets, flushed and renamed onto them, in order, when the block succeeds.

    On any error before the first rename the temporary files are removed and
    the targets are untouched. Once the first target is renamed the write is
    committed: the remaining temporary files stay for a reader or the next
    writer to finish it (see :mod:`vaereg_core.voxel_safety.pairs`). Each
    temporary name keeps its target's extension, which some writers use to
    pick the format. The targets' folders must exist.
    """
    temps: list[Path] = []
    committed = False
    try:
        for target in targets:
            temps.append(create_temp(target))
        yield temps
        for temp in temps:
            fsync_file(temp)
        for temp, target in zip(temps, targets):
            os.replace(temp, target)
            committed = True
        fsync_folder(targets[0].parent)
    finally:
        if not committed:
            for temp in temps:
                temp.unlink(missing_ok=True)


def temp_files(target: Path) -> list[tuple[Path, int]]:
    """The temporary files of writers of ``target`` with their writers' process ids."""
    found = []
    for temp in target.parent.glob(f".{glob.escape(target.name)}.*.tmp*"):
        pid = temp.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit():
            found.append((temp, int(pid)))
    return found


def is_dead_writer(pid: int) -> bool:
    """Whether the writer with this process id has ended (on Windows: always assumed, see below)."""
    return os.name != "posix" or not _process_exists(pid)


def remove_dead_writers_files(target: Path) -> None:
    """Delete the temporary files that writers of ``target`` killed mid-write left behind.

    Files of live writers (this process included) are kept. On Windows, where
    a process cannot be checked this way, every temporary file is tried: a live
    writer's open file cannot be deleted there, so it survives.
    """
    for temp, pid in temp_files(target):
        if pid != os.getpid() and is_dead_writer(pid):
            with contextlib.suppress(OSError):
                temp.unlink()


def fsync_file(path: Path) -> None:
    """Flush a file's data to the disk, so a rename after it never exposes an empty file after a power loss."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (the renames in it); a no-op where folders cannot be opened (Windows)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # POSIX only: signal 0 checks without signalling
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
