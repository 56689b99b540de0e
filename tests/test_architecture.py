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


def _contract_layers(name_start: str) -> list[str]:
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["name"].startswith(name_start))["layers"]
    return [module.strip() for layer in layers for module in layer.split("|")]


def test_import_linter_layers_are_kept_and_name_every_engine_module():
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe), str(ROOT / "pyproject.toml")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "vaereg_core layers: commands, experiments" in out.stdout and " 0 broken." in out.stdout
    engine = ROOT / "core" / "vaereg_core"
    modules = {p.stem for p in engine.glob("*.py") if p.stem != "__init__"} | {p.name for p in engine.iterdir() if (p / "__init__.py").is_file()}
    assert modules == set(_contract_layers("vaereg_core layers")), "place every top-level module of vaereg_core in a layer"


def test_commands_only_parse_and_call():
    """Experiments, reports and plots live below the command line (vaereg_core.experiments and the engine)."""
    for path in (ROOT / "core" / "vaereg_core" / "cli").glob("*.py"):
        text = path.read_text()
        for sign in ("matplotlib", "savefig", "def _markdown", "run_experiments(", "component_study(train, val"):
            assert sign not in text, f"{path.name} has {sign!r}: move that work into vaereg_core.experiments"


def test_one_atomic_write_helper():
    """Every writer goes through vaereg_core.atomic_files; only the pair recovery renames a dead writer's file itself."""
    allowed = {"atomic_files.py", "pairs.py", "table.py"}  # table.py: the dataset writer, converted under issue 20
    for path in (ROOT / "core" / "vaereg_core").rglob("*.py"):
        if path.name not in allowed:
            text = path.read_text()
            assert "os.replace(" not in text and "os.rename(" not in text, f"{path}: write through atomic_files.atomic_paths"
