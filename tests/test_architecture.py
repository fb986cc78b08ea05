"""The package's layers hold: import-linter's contract in pyproject.toml (no module imports a
layer above its own; the library never imports recipes, cli or serve)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_layers_contract():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    r = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_every_module_is_in_a_layer():
    """A new top-level module or package must be placed in the contract's layers."""
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    layers = cfg["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {m.strip().split(".")[1] for layer in layers for m in layer.split(":")}
    pkg = ROOT / "src" / "emofuse"
    present = {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"}
    present |= {p.name for p in pkg.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert present - named == set(), f"not in any layer: {sorted(present - named)}"
