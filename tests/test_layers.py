"""The three floors and their boundaries: `cream_tui` (CLI verbs, tables, dashboard) ->
`cream_engine`'s light layer (config, store, queue, worker, GPUs, results, errors) -> its heavy
layer (pipeline, stages, trainer, backends).

- `cream_tui` imports only the light layer (it reaches the heavy one through a process: the
  worker or `cream run` start `python -m cream_engine`);
- the light layer imports only itself (anything more would pull the training stack into
  `cream status`); the heavy layer builds on the light one;
- the engine never imports `cream_tui`, and no import is in a circle.
Imports inside functions and under TYPE_CHECKING count. What libraries a layer really loads is
checked by importing it in a fresh interpreter (a static walk cannot see inside a library)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cream_engine", "cream_tui")
# the engine's light layer: standard library + sqlite-utils + nvidia-ml-py
LIGHT = {"cream_engine", "cream_engine.errors", "cream_engine.config", "cream_engine.sections",
         "cream_engine.paths",
         "cream_engine.files", "cream_engine.prompts", "cream_engine.evalsets",
         "cream_engine.runs", "cream_engine.store", "cream_engine.queue", "cream_engine.worker",
         "cream_engine.daemon", "cream_engine.gpu", "cream_engine.schema",
         "cream_engine.results", "cream_engine.compare", "cream_engine.export",
         "cream_engine.modelfiles", "cream_engine.plan", "cream_engine.memory",
         "cream_engine.vllmcheck",
         "cream_engine.shapes", "cream_engine.admission", "cream_engine.worker_options",
         "cream_engine.config_stages", "cream_engine.seeds", "cream_engine.presets",
         "cream_engine.stats", "cream_engine.answers", "cream_engine.userconfig",
         "cream_engine.executors", "cream_engine.executors.slurm",
         "cream_engine.executors.sbatch", "cream_engine.hosts",
         "cream_engine.prompt_view", "cream_engine.eta", "cream_engine.metric_reads",
         "cream_engine.processes", "cream_engine.lookup", "cream_engine.eval_metrics"}
HEAVY_LIBS = ("torch", "transformers", "trl", "vllm", "peft", "accelerate", "datasets",
              "pandas")
MAX_LINES = 420  # "a few hundred lines": a module past ~400 is asking to be split


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of ours that `name` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def floor(name: str) -> str:
    if name.startswith("cream_tui"):
        return "tui"
    return "light" if name in LIGHT else "heavy"


ALLOWED = {"tui": {"tui", "light"}, "light": {"light"}, "heavy": {"heavy", "light"}}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def with_parents(names: set[str]) -> set[str]:
    """Importing `a.b.c` runs `a/__init__` and `a/b/__init__` first: they count too."""
    out = set(names)
    for name in names:
        while "." in name:
            name = name.rpartition(".")[0]
            out.add(name)
    return out


def test_every_import_respects_the_floors() -> None:
    g = graph()
    assert LIGHT <= set(g), sorted(LIGHT - set(g))
    wrong = sorted(f"{m} ({floor(m)}) -> {t} ({floor(t)})" for m, ts in g.items()
                   for t in with_parents(ts) if t in g and floor(t) not in ALLOWED[floor(m)])
    assert wrong == []


def test_no_import_circles() -> None:
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in g:
        if v not in index:
            visit(v)
    assert circles == []


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The walk must catch what a static linter would miss (so the tests above can fail)."""
    code = tmp_path / "m.py"
    code.write_text("def f():\n    from cream_tui.app import CreamApp\n"
                    "if False:\n    import cream_engine.pipeline\n")
    found = imports("cream_engine.store", code, modules())
    assert {"cream_tui.app", "cream_engine.pipeline"} <= found
    assert {floor(t) for t in found} - ALLOWED["light"] == {"tui", "heavy"}


SQL = re.compile(r"\b(SELECT\s.*\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
                 r"CREATE\s+(TABLE|INDEX)|PRAGMA)\b", re.I | re.S)


def sql_in(path: Path) -> list[str]:
    """Where a file holds SQL: a string that reads as SQL (implicit concatenations are one
    string in the syntax tree), or an execute call (`query` is Textual's DOM query too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                SQL.search(node.value):
            found.append(f"{path.name}:{node.lineno}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("execute", "executemany", "executescript"):
            found.append(f"{path.name}:{node.lineno} .{node.func.attr}()")
    return found


def test_no_sql_in_the_users_side(tmp_path: Path) -> None:
    assert [hit for p in (ROOT / "cream_tui").rglob("*.py") for hit in sql_in(p)] == []
    probe = tmp_path / "probe.py"   # the check itself can fail
    probe.write_text('q = ("SELECT a "\n     "FROM t")\nstore.execute(q)\n')
    assert sql_in(probe) == ["probe.py:1", "probe.py:3 .execute()"]


def test_modules_stay_a_few_hundred_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in modules().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


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
print(json.dumps({{"modules": names, "heavy": [h for h in {HEAVY_LIBS!r} if h in sys.modules]}}))
""")
    assert "cream_tui.cli" in result["modules"] and "cream_tui.app" in result["modules"]
    assert result["heavy"] == []


def test_light_engine_layer_imports_no_heavy_library() -> None:
    result = _run(f"""
import importlib, json, sys
for name in {sorted(LIGHT)!r}:
    importlib.import_module(name)
print(json.dumps({{"heavy": [h for h in {HEAVY_LIBS!r} + ("sqlite_utils", "numpy")
                             if h in sys.modules]}}))
""")
    assert result["heavy"] == []


def test_help_path_imports_neither_heavy_libraries_nor_the_dashboard() -> None:
    result = _run(f"""
import contextlib, io, json, sys
from cream_tui.cli import app
with contextlib.redirect_stdout(io.StringIO()):
    try:
        app(["--help"], standalone_mode=False)
    except SystemExit:
        pass
bad = [h for h in {HEAVY_LIBS!r} + ("sqlite_utils", "textual", "numpy", "pydantic")
       if h in sys.modules]
print(json.dumps({{"heavy": bad}}))
""")
    assert result["heavy"] == []
