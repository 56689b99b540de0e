"""Damaged and crafted voxel files, and a harness that reads them in child processes.

Used by ``tests/test_voxel_fuzz.py`` (on the committed corpus in
``tests/corpus``) and ``benchmarks/fuzz_voxels.py`` (on fresh mutants).
Everything is seeded: the same seed gives the same mutations.

Regenerate the committed corpus with::

    .venv/bin/python tests/voxel_fuzz.py tests/corpus --seed 17 --mutants 8

The harness reads each file with :func:`vaereg_core.voxel_io.read_voxel_file`
in a child process under an address-space limit and classifies the outcome:
``clean`` (read), ``error`` (the project's one-line error), ``contained``
(the project's error after the reader's own child process crashed or hung:
safe, but a header check missed something), ``traceback`` (any other
exception), ``crash`` (the child died by a signal), ``hang`` (no answer in
time) or ``memory`` (peak resident memory over the limit).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMATS = (".npy", ".npz", ".h5", ".vti", ".tif", ".raw")
OUTCOMES = ("clean", "error", "contained", "traceback", "crash", "hang", "memory")
BUDGET_BYTES = 64_000_000
"""The children's ``$VAEREG_MAX_VOXEL_BYTES``: small, so 'too large' is reached by small files."""
ADDRESS_LIMIT = 1_500_000_000
MEMORY_LIMIT_KB = 1_000_000
READ_TIMEOUT_S = 15
"""The readers' own child-process timeout; the harness waits longer, so a hang it sees is a real one."""
HARNESS_TIMEOUT_S = 60
MANIFEST = "MANIFEST.json"


# --------------------------------------------------------------------------- corpus


def base_structure() -> np.ndarray:
    """A small non-cubic binary structure (12x10x8): every format's files stay around a kilobyte."""
    rng = np.random.default_rng(0)
    return (rng.random((12, 10, 8)) < 0.4).astype(np.uint8)


def write_bases(folder: Path) -> dict[str, Path]:
    """One valid file per format, with object metadata."""
    from vaereg_core.voxel_io import write_voxels

    folder.mkdir(parents=True, exist_ok=True)
    meta = {"generator": "voxel_fuzz", "properties": {"C11": 35.0}}
    return {ext: write_voxels(folder / f"base{ext}", base_structure(), metadata=meta, overwrite=True) for ext in FORMATS}


def _files_of(path: Path) -> list[Path]:
    """A file and its sidecar (for ``.raw`` and ``.npy`` pairs)."""
    sidecar = path.with_name(path.name + ".json")
    return [path, sidecar] if sidecar.exists() else [path]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random damage: a truncation, bit flips, a zeroed or random region, a cut, or an edited number."""
    n = len(data)
    # Half the damage lands in the first 512 bytes, where the headers are.
    def position() -> int:
        return rng.randrange(min(n, 512)) if rng.random() < 0.5 else rng.randrange(n)

    kind = rng.choice(("truncate", "flip", "zero", "random", "cut", "number", "number"))
    out = bytearray(data)
    if kind == "truncate":
        return bytes(out[: rng.randrange(n)])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = position()
            out[i] ^= 1 << rng.randrange(8)
    elif kind == "zero":
        i = position()
        length = rng.randint(1, 1024)
        out[i : i + length] = bytes(len(out[i : i + length]))
    elif kind == "random":
        i = position()
        length = rng.randint(1, 64)
        out[i : i + length] = rng.randbytes(len(out[i : i + length]))
    elif kind == "cut":
        i = position()
        del out[i : i + rng.randint(1, 256)]
    else:
        numbers = [m for m in re.finditer(rb"-?\d+", data[:4096])]
        if not numbers:
            return mutate(data, rng)
        m = rng.choice(numbers)
        value = str(rng.choice((0, -1, -2**31, 2**31, 2**63, 2000, 10**9, rng.randrange(1 << 20)))).encode()
        out[m.start() : m.end()] = value
    return bytes(out)


def write_mutants(bases: dict[str, Path], folder: Path, per_format: int, seed: int, formats=FORMATS) -> list[Path]:
    """``per_format`` mutants of each base file (of a pair, the data or the sidecar is damaged)."""
    rng = random.Random(seed)
    written = []
    for ext in formats:
        base_files = _files_of(bases[ext])
        for k in range(per_format):
            target = folder / f"mutant-{k:04d}{ext}"
            victim = rng.randrange(len(base_files))
            for i, source in enumerate(base_files):
                data = source.read_bytes()
                name = target.name + source.name[len(bases[ext].name) :]
                (folder / name).write_bytes(mutate(data, rng) if i == victim else data)
            written.append(target)
    return written


def write_hostile(folder: Path) -> dict[str, str]:
    """The crafted files of issue 17, each with its expected outcome (an error class name or ``clean``)."""
    import h5py
    import tifffile

    from vaereg_core.voxel_io import _write_vti, write_voxels  # the private writer stores any metadata text

    folder.mkdir(parents=True, exist_ok=True)
    x = base_structure()
    expected: dict[str, str] = {}

    def put(name: str, data: bytes | str, outcome: str) -> None:
        (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)
        expected[name] = outcome

    def npy_bytes(header: dict, body: bytes = b"\x00" * 64) -> bytes:
        import io

        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, header)
        return buffer.getvalue() + body

    # .npy
    put("npy-declares-2000-cubed.npy", npy_bytes({"descr": "|u1", "fortran_order": False, "shape": (2000, 2000, 2000)}), "VoxelFileTooLargeError")
    put("npy-object-dtype.npy", npy_bytes({"descr": "|O", "fortran_order": False, "shape": (2, 2, 2)}), "UnsupportedVoxelFileError")
    put("npy-truncated-data.npy", npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (12, 10, 8)}), "CorruptVoxelFileError")
    for name, sidecar, outcome in (("npy-metadata-list", "[1, 2, 3]", "clean"), ("npy-metadata-deep", "[" * 10_000 + "]" * 10_000, "CorruptVoxelFileError")):
        np.save(folder / f"{name}.npy", x)
        (folder / f"{name}.npy.json").write_text(sidecar)
        expected[f"{name}.npy"] = outcome
    # .npz
    import zipfile

    with zipfile.ZipFile(folder / "npz-declares-2000-cubed.npz", "w") as z:
        z.writestr(zipfile.ZipInfo("voxels.npy", date_time=(2026, 1, 1, 0, 0, 0)), npy_bytes({"descr": "|u1", "fortran_order": False, "shape": (2000, 2000, 2000)}))
    expected["npz-declares-2000-cubed.npz"] = "VoxelFileTooLargeError"
    np.savez_compressed(folder / "npz-inflates-to-100-MB.npz", voxels=np.zeros((500, 500, 400), np.uint8))
    expected["npz-inflates-to-100-MB.npz"] = "VoxelFileTooLargeError"
    np.savez(folder / "npz-metadata-number.npz", voxels=x, metadata=np.array("42"))
    expected["npz-metadata-number.npz"] = "clean"
    np.savez(folder / "npz-object-metadata.npz", voxels=x, metadata=np.array([{"a": 1}], dtype=object))
    expected["npz-object-metadata.npz"] = "CorruptVoxelFileError"
    # .h5
    with h5py.File(folder / "h5-declares-2000-cubed.h5", "w") as f:
        f.create_dataset("microstructures", shape=(2000, 2000, 2000), dtype="u1", chunks=(1, 100, 100))
    expected["h5-declares-2000-cubed.h5"] = "VoxelFileTooLargeError"
    with h5py.File(folder / "h5-external-storage.h5", "w") as f:
        f.create_dataset("microstructures", shape=(4, 4, 4), dtype="u1", external=[("/etc/passwd", 0, 64)])
    expected["h5-external-storage.h5"] = "UnsupportedVoxelFileError"
    with h5py.File(folder / "h5-external-link.h5", "w") as f:
        f["microstructures"] = h5py.ExternalLink("/etc/other.h5", "/microstructures")
    expected["h5-external-link.h5"] = "UnsupportedVoxelFileError"
    with h5py.File(folder / "h5-virtual.h5", "w") as f:
        layout = h5py.VirtualLayout(shape=(4, 4, 4), dtype="u1")
        layout[:] = h5py.VirtualSource("/etc/other.h5", "microstructures", shape=(4, 4, 4))
        f.create_virtual_dataset("microstructures", layout)
    expected["h5-virtual.h5"] = "UnsupportedVoxelFileError"
    with h5py.File(folder / "h5-metadata-list.h5", "w") as f:
        f["microstructures"] = x
        f.attrs["metadata"] = "[1, 2, 3]"
    expected["h5-metadata-list.h5"] = "clean"
    base_h5 = write_voxels(folder / "h5-base.h5", x, metadata={"a": 1}, overwrite=True).read_bytes()
    (folder / "h5-base.h5").unlink()
    for offset in (0, 96, 512, 800, 1024, 2048):
        data = bytearray(base_h5)
        data[offset : offset + 898] = bytes(len(data[offset : offset + 898]))
        put(f"h5-898-zero-bytes-at-{offset}.h5", bytes(data), "any")
    # .vti
    vti = write_voxels(folder / "vti-base.vti", x, metadata={"a": 1}, overwrite=True).read_bytes()
    (folder / "vti-base.vti").unlink()
    put("vti-extent-2000-cubed.vti", vti.replace(b'"0 12 0 10 0 8"', b'"0 2000 0 2000 0 2000"'), "VoxelFileTooLargeError")
    put("vti-extent-beyond-data.vti", vti.replace(b'"0 12 0 10 0 8"', b'"0 24 0 10 0 8"'), "CorruptVoxelFileError")
    put("vti-negative-components.vti", vti.replace(b'Name="phase"', b'Name="phase" NumberOfComponents="-1"'), "CorruptVoxelFileError")
    put("vti-entity-bomb.vti", b'<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "' + b"a" * 100 + b'">]>' + vti.split(b"?>", 1)[1], "CorruptVoxelFileError")
    _write_vti([folder / "vti-metadata-list.vti"], x, "[1, 2, 3]")
    expected["vti-metadata-list.vti"] = "clean"
    # .tif
    tifffile.imwrite(folder / "tif-base.tif", x * 255, photometric="minisblack")
    tif = (folder / "tif-base.tif").read_bytes()
    (folder / "tif-base.tif").unlink()
    put("tif-strip-offset-0.tif", _patch_tiff_tag(folder, tif, "StripOffsets", 0), "CorruptVoxelFileError")
    put("tif-lzw.tif", _patch_tiff_tag(folder, tif, "Compression", 5), "UnsupportedVoxelFileError")
    put("tif-width-65535.tif", _patch_tiff_tag(folder, tif, "ImageWidth", 65535), "CorruptVoxelFileError")
    # .raw
    raw = x.tobytes()
    for name, sidecar, outcome in (
        ("raw-declares-2000-cubed", {"shape": [2000, 2000, 2000], "dtype": "uint8"}, "VoxelFileTooLargeError"),
        ("raw-negative-shape", {"shape": [-12, 10, -8], "dtype": "uint8"}, "CorruptVoxelFileError"),
        ("raw-object-dtype", {"shape": [12, 10, 8], "dtype": "O"}, "UnsupportedVoxelFileError"),
        ("raw-subarray-dtype", {"shape": [1, 1, 1], "dtype": "(960,)u1"}, "UnsupportedVoxelFileError"),
        ("raw-sidecar-list", [12, 10, 8], "CorruptVoxelFileError"),
        ("raw-metadata-list", {"shape": [12, 10, 8], "dtype": "uint8", "metadata": [1, 2, 3]}, "clean"),
        ("raw-checksum-mismatch", {"shape": [12, 10, 8], "dtype": "uint8", "data_bytes": 960, "data_sha256": "0" * 64}, "CorruptVoxelFileError"),
    ):
        put(f"{name}.raw", raw, outcome)
        (folder / f"{name}.raw.json").write_text(json.dumps(sidecar))
    put("raw-sidecar-deep.raw", raw, "CorruptVoxelFileError")
    (folder / "raw-sidecar-deep.raw.json").write_text('{"shape": ' + "[" * 10_000 + "]" * 10_000 + "}")
    return expected


def _patch_tiff_tag(folder: Path, data: bytes, tag: str, value: int) -> bytes:
    """``data`` with the first page's ``tag`` set to ``value`` (an inline SHORT or LONG)."""
    import tifffile
    from tifffile import TIFF

    scratch = folder / ".patch.tif"
    scratch.write_bytes(data)
    with tifffile.TiffFile(scratch) as tif:
        entry = tif.pages[0].tags[tag]
        offset, dtype = entry.valueoffset, np.dtype(tif.byteorder + TIFF.DATA_FORMATS[entry.dtype][-1])
    scratch.unlink()
    out = bytearray(data)
    out[offset : offset + dtype.itemsize] = np.array(value, dtype).tobytes()
    return bytes(out)


def write_corpus(folder: Path, seed: int, per_format: int) -> dict[str, str]:
    """Bases, mutants and crafted files in ``folder``, with ``MANIFEST.json`` (name -> expected outcome)."""
    folder.mkdir(parents=True, exist_ok=True)
    bases = write_bases(folder)
    expected = {path.name: "clean" for path in bases.values()}
    expected.update({p.name: "any" for p in write_mutants(bases, folder, per_format, seed)})
    expected.update(write_hostile(folder))
    (folder / MANIFEST).write_text(json.dumps(dict(sorted(expected.items())), indent=1) + "\n")
    return expected


# --------------------------------------------------------------------------- harness

_CHILD = r"""
import json, os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
from vaereg_core.errors import VoxelFileError
from vaereg_core.voxel_io import read_voxel_file

def peak_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

print("ready", flush=True)
for line in sys.stdin:
    path = line.rstrip("\n")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak resident size, so each file gets its own
    result = {"path": path}
    try:
        voxels, metadata = read_voxel_file(path)
        result.update(outcome="clean", shape=list(voxels.shape), metadata=metadata)
    except VoxelFileError as exc:
        result.update(outcome="error", cls=type(exc).__name__, message=str(exc))
    except BaseException as exc:
        result.update(outcome="traceback", cls=type(exc).__name__, message=str(exc)[:500])
    result["rss_kb"] = peak_kb()
    result["children_rss_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(result, default=str), flush=True)
"""


@dataclass
class Result:
    """How one file fared."""

    path: str
    outcome: str
    cls: str = ""
    message: str = ""
    metadata: object = None


class Harness:
    """A child process that reads files one by one; replaced when it crashes or hangs."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.children_rss_kb = 0

    def _start(self) -> subprocess.Popen:
        env = {
            **os.environ,
            "VAEREG_MAX_VOXEL_BYTES": str(BUDGET_BYTES),
            "VAEREG_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(ADDRESS_LIMIT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"fuzz child did not start: {process.stderr.read()}")
        self.children_rss_kb = 0
        return process

    def read(self, path: Path) -> Result:
        """Read one file in the child; classify the outcome."""
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        self.process.stdin.write(f"{path}\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], HARNESS_TIMEOUT_S)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            hung = self.process.poll() is None
            self.close()
            return Result(str(path), "hang" if hung else "crash", message=f"exit {self.process.returncode}")
        answer = json.loads(line)
        result = Result(str(path), answer["outcome"], answer.get("cls", ""), answer.get("message", ""), answer.get("metadata"))
        grew = answer["children_rss_kb"] > self.children_rss_kb
        self.children_rss_kb = max(self.children_rss_kb, answer["children_rss_kb"])
        if answer["rss_kb"] > MEMORY_LIMIT_KB or (grew and answer["children_rss_kb"] > MEMORY_LIMIT_KB):
            result.outcome = "memory"
        elif result.outcome == "error" and ("\n" in result.message or not result.message):
            result.outcome = "traceback"  # a project error must be one line
        elif result.outcome == "error" and ("reader crashed" in result.message or "did not finish" in result.message):
            result.outcome = "contained"
        return result

    def close(self) -> None:
        """Stop the child (killed if it does not end at once)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            stream.close()


def run(paths: list[Path]) -> list[Result]:
    """Read every file through one :class:`Harness`."""
    harness = Harness()
    try:
        return [harness.read(p) for p in paths]
    finally:
        harness.close()


def summarise(results: list[Result]) -> dict[str, Counter]:
    """Outcome counts per extension."""
    table: dict[str, Counter] = {}
    for r in results:
        table.setdefault(Path(r.path).suffix, Counter())[r.outcome] += 1
    return table


# --------------------------------------------------------------------------- child-process targets


def aborting_reader(path: Path) -> None:
    """A reader that dies as VTK does on a bad header: a message on stderr, then SIGABRT."""
    os.write(2, b"vtkXMLImageDataReader: std::bad_alloc\n")
    os.abort()


def hanging_reader(path: Path) -> None:
    """A reader that never returns, as the HDF5 library did on a damaged object header."""
    while True:
        time.sleep(1)


def contents(tag: str) -> tuple[np.ndarray, dict]:
    """Voxels and metadata of the two versions ``"A"`` and ``"B"`` a killed writer alternates between."""
    x = base_structure()
    return (x if tag == "A" else 1 - x), {"content": tag}


def write_forever(path: Path, started) -> None:
    """Write versions A and B of ``path`` in turn until killed; set ``started`` once running."""
    from vaereg_core.voxel_io import write_voxels

    started.set()
    while True:
        for tag in "BA":
            voxels, metadata = contents(tag)
            write_voxels(path, voxels, metadata=metadata, overwrite=True)


def write_then_die_at_rename(path: Path, renames_done: int) -> None:
    """Write version B of ``path``, SIGKILLed when starting rename number ``renames_done + 1``."""
    import signal

    from vaereg_core.voxel_io import write_voxels

    real_replace, calls = os.replace, []

    def replace(src, dst):
        if len(calls) == renames_done:
            os.kill(os.getpid(), signal.SIGKILL)
        calls.append(dst)
        real_replace(src, dst)

    os.replace = replace
    voxels, metadata = contents("B")
    write_voxels(path, voxels, metadata=metadata, overwrite=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the seeded fuzz corpus of damaged voxel files.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--mutants", type=int, default=8, help="mutants per format (default 8)")
    args = parser.parse_args(argv)
    t = time.perf_counter()
    expected = write_corpus(args.folder, args.seed, args.mutants)
    print(f"wrote {len(expected)} files to {args.folder} in {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
