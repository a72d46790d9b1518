"""CPU time of the quick CLI commands: `cream --help`, `cream status`, `cream queue ls`,
`cream worker status`, `cream status RUN`, each run as a user would (the console script, a fresh
interpreter), against a store filled like the dashboard tests' (five runs, ~20,000 metric rows).

CPU is user + system time of the child process (`os.wait4`) over N runs (min, median, max:
a shared VM adds noise); wall time beside it. Also prints the heavy modules each command
loaded (there should be none). Byte code is cached as on a user's machine
(`PYTHONDONTWRITEBYTECODE` is dropped, one warm-up run): without it every start compiles
every module again.

    .venv/bin/python bench/cli_startup.py [--runs 10]

Target (issue 11): `cream status` and `cream queue ls` under 0.3 s of CPU. Not a timed test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tui.fixtures import RUNS, write_store  # noqa: E402

COMMANDS = (["--help"], ["status"], ["queue", "ls"], ["worker", "status"],
            ["status", RUNS.running], ["status", "--json"])
HEAVY = ("torch", "transformers", "trl", "vllm", "datasets", "pandas", "numpy", "sqlite_utils",
         "pydantic", "textual")
PROBE = ("import runpy, sys, atexit; "
         "atexit.register(lambda: print('LOADED', *[m for m in {heavy!r} if m in sys.modules], "
         "file=sys.stderr)); sys.argv = ['cream', *sys.argv[1:]]; "
         "runpy.run_module('cream_tui.cli', run_name='__main__')")


def cpu_of(argv: list[str], env: dict) -> tuple[float, float]:
    """(user + system CPU seconds, wall seconds) of one run."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    cream = shutil.which("cream", path=str(Path(sys.executable).parent)) or "cream"
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        write_store(home)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(CREAM_HOME=str(home), COLUMNS="120")
        for command in COMMANDS:  # warm the page cache and write the .pyc files
            cpu_of([cream, *command], env)
        print(f"{'command':<30} {'CPU min':>8} {'median':>7} {'max':>7} {'wall':>7}  "
              "heavy modules")
        for command in COMMANDS:
            runs = [cpu_of([cream, *command], env) for _ in range(args.runs)]
            cpu = [c for c, _ in runs]
            probe = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *command],
                                   env=env, capture_output=True, text=True)
            loaded = next((line.split()[1:] for line in probe.stderr.splitlines()
                           if line.startswith("LOADED")), ["?"])
            label = "cream " + " ".join(c if len(c) < 20 else c[:8] + "…" for c in command)
            print(f"{label:<30} {min(cpu):>7.3f}s {statistics.median(cpu):>6.3f}s "
                  f"{max(cpu):>6.3f}s {statistics.median(w for _, w in runs):>6.3f}s  "
                  f"{' '.join(loaded) or '-'}")


if __name__ == "__main__":
    main()
