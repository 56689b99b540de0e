"""The engine stays GUI-free: an import-linter contract and an import without Qt."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCK_QT = """
import importlib.abc, sys
class NoQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'PySide6', 'pyvistaqt', 'superqt', 'pyqtgraph', 'shiboken6'}:
            raise ImportError(f'{name} is not installed (blocked by the test)')
sys.meta_path.insert(0, NoQt())
import pkgutil, importlib, vaereg_core
for m in pkgutil.walk_packages(vaereg_core.__path__, 'vaereg_core.'):
    if not m.name.endswith('__main__'):
        importlib.import_module(m.name)
from vaereg_core.cli import build_parser
build_parser()
print('ok')
"""


def test_core_imports_every_module_without_qt():
    out = subprocess.run([sys.executable, "-c", BLOCK_QT], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_import_linter_contract():
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe), str(ROOT / "pyproject.toml")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "vaereg_core is GUI-free KEPT" in out.stdout
