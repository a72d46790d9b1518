"""The user's side never pulls in the training stack (static linting cannot see deferred
imports, so this imports every module in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "trl", "vllm", "peft", "accelerate")


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cream_tui_modules_import_no_heavy_library() -> None:
    result = _run(f"""
import importlib, json, pkgutil, sys
import cream_tui
names = [m.name for m in pkgutil.walk_packages(cream_tui.__path__, "cream_tui.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({{"modules": names, "heavy": [h for h in {HEAVY!r} if h in sys.modules]}}))
""")
    assert "cream_tui.cli" in result["modules"] and "cream_tui.app" in result["modules"]
    assert result["heavy"] == []


def test_light_engine_layer_imports_no_heavy_library() -> None:
    result = _run(f"""
import json, sys
import cream_engine.config, cream_engine.paths, cream_engine.store, cream_engine.data
print(json.dumps({{"heavy": [h for h in {HEAVY!r} if h in sys.modules]}}))
""")
    assert result["heavy"] == []


def test_help_path_imports_neither_heavy_libraries_nor_the_store() -> None:
    result = _run(f"""
import contextlib, io, json, sys
from cream_tui.cli import app
with contextlib.redirect_stdout(io.StringIO()):
    try:
        app(["--help"], standalone_mode=False)
    except SystemExit:
        pass
bad = [h for h in {HEAVY!r} + ("sqlite_utils", "textual", "pandas") if h in sys.modules]
print(json.dumps({{"heavy": bad}}))
""")
    assert result["heavy"] == []
