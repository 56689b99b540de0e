"""Fuzzing the voxel readers: every damaged or crafted file gives a clean read or one project error.

The committed corpus (``tests/corpus``, written by ``tests/voxel_fuzz.py``
with seed 17) holds a valid file per format, seeded mutants of each
(truncations, bit flips, zeroed and random regions, cuts, edited header
numbers) and the crafted files of issue 17 (huge declared shapes, negative
components, external HDF5 storage and links, virtual datasets, StripOffsets
0, LZW without imagecodecs, deep and non-object metadata). Each is read in a
child process under a 1.5 GB address-space limit; none may crash, hang,
print a traceback or exceed 1 GB.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import voxel_fuzz

CORPUS = Path(__file__).parent / "corpus"


def _check(results, expected):
    bad = []
    for r in results:
        want = expected[Path(r.path).name]
        ok = r.outcome in ("clean", "error") and (want == "any" or (want == "clean" and r.outcome == "clean") or want == r.cls)
        if not ok:
            bad.append(f"{Path(r.path).name}: {r.outcome} {r.cls} {r.message[:200]} (expected {want})")
    assert not bad, "\n".join(bad)


def test_committed_corpus():
    expected = json.loads((CORPUS / voxel_fuzz.MANIFEST).read_text())
    results = voxel_fuzz.run([CORPUS / name for name in expected])
    _check(results, expected)
    by_name = {Path(r.path).name: r for r in results}
    for name in ("npy-metadata-list.npy", "h5-metadata-list.h5", "raw-metadata-list.raw", "vti-metadata-list.vti"):
        assert by_name[name].metadata == {"metadata": [1, 2, 3]}, name
    assert by_name["npz-metadata-number.npz"].metadata == {"metadata": 42}
    assert "needs imagecodecs" in by_name["tif-lzw.tif"].message
    assert "declares 2000³ uint8 = 8.0 GB; limit 64.0 MB, raise with VAEREG_MAX_VOXEL_BYTES" in by_name["h5-declares-2000-cubed.h5"].message


def test_fresh_mutants(tmp_path):
    bases = voxel_fuzz.write_bases(tmp_path)
    paths = voxel_fuzz.write_mutants(bases, tmp_path, per_format=4, seed=2026)
    _check(voxel_fuzz.run(paths), {p.name: "any" for p in paths})


@pytest.mark.parametrize(
    "name, code, text",
    [
        ("npy-metadata-list.npy", 0, "Metadata  [1, 2, 3]"),  # a non-object sidecar is shown, as data, under its key
        ("h5-external-storage.h5", 2, "keeps its data in another file"),
        ("vti-extent-2000-cubed.vti", 2, "8.0 GB; limit"),
    ],
)
def test_vaereg_info_on_hostile_files(name, code, text):
    env = {**os.environ, "VAEREG_MAX_VOXEL_BYTES": str(voxel_fuzz.BUDGET_BYTES)}
    r = subprocess.run([sys.executable, "-m", "vaereg_core.cli", "info", CORPUS / name], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == code, r.stderr
    if code:
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and text in r.stderr
    else:
        assert text in r.stdout and not r.stderr
