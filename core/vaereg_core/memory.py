"""Memory budget: refuse a computation that would not fit before it starts.

A solve or a generation that runs out of memory half-way wastes minutes and
ends in ``MemoryError`` or the kernel's OOM killer; comparing an estimate
with the memory available first gives one clear line instead. The limit is,
in order: an explicit ``max_gb`` (``--max-memory``), the environment variable
``VAEREG_MAX_MEMORY_GB``, or the memory available now (Linux
``/proc/meminfo`` MemAvailable, else ``sysconf``; no check where neither exists).

Examples
--------
>>> format_bytes(3.1e9)
'3.1 GB'
>>> check_memory(1000, "a tiny job", max_gb=1.0)
"""

from __future__ import annotations

import os

from vaereg_core.environment import positive_number
from vaereg_core.errors import VaeRegError

ENV_VAR = "VAEREG_MAX_MEMORY_GB"
"""Environment variable overriding the memory limit (GB, 1e9 bytes)."""


class MemoryBudgetError(VaeRegError):
    """A computation's estimated memory exceeds the limit."""


def format_bytes(n: float) -> str:
    """``8.0 GB``, ``1.4 kB``: decimal units, one decimal (every size a message names: memory, files)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _sysconf_available() -> int | None:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # not on Windows or macOS
        return None


def available_bytes() -> int | None:
    """Memory this machine can give a new allocation now, or None where the OS does not say.

    MemAvailable counts reclaimable page cache; ``SC_AVPHYS_PAGES`` (free pages
    only) is the fallback and underestimates.
    """
    return _meminfo_available() or _sysconf_available()


def gpu_available_bytes(device: str) -> int | None:
    """Free memory of a CUDA device (``"cuda"`` or ``"cuda:N"``), or None if it cannot be asked."""
    try:
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    except Exception:  # noqa: BLE001 - no CUDA, no driver: nothing to compare with
        return None


def _env_limit() -> float | None:
    if not os.environ.get(ENV_VAR):  # set to nothing: no limit, as unset
        return None
    try:
        return positive_number(ENV_VAR, "GB")
    except ValueError as exc:
        raise MemoryBudgetError(str(exc)) from None


def check_memory(needed: int, what: str, *, max_gb: float | None = None, device: str = "cpu") -> None:
    """Raise MemoryBudgetError if ``needed`` bytes exceed the limit.

    Parameters
    ----------
    needed : int
        Estimated bytes the computation allocates.
    what : str
        The computation, for the message (e.g. ``"homogenisation of 256^3"``).
    max_gb : float, optional
        Explicit limit in GB; overrides the environment variable and the available memory.
    device : str
        ``"cpu"``, or a CUDA device whose free memory is the limit.
    """
    limit_gb = max_gb if max_gb is not None else _env_limit()
    if limit_gb is not None:
        limit = int(limit_gb * 1e9)
        what_limit = f"the limit of {format_bytes(limit)}"
    else:
        cuda = device.startswith("cuda")
        limit = gpu_available_bytes(device) if cuda else available_bytes()
        if limit is None:
            return
        what_limit = f"the {format_bytes(limit)} " + (f"free on {device}" if cuda else "of memory available")
    if needed > limit:
        raise MemoryBudgetError(
            f"{what} needs about {format_bytes(needed)}, more than {what_limit}; "
            f"raise the limit with --max-memory GB or {ENV_VAR} to try anyway"
        )
