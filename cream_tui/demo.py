"""`cream demo`: the first-run experience, a small real `cream` run on the bundled
SmolLM2-135M-Instruct (or `--tiny`: the random tiny model, in well under a minute).

Everything heavy happens in child processes (`python -m cream_engine ...`), so the CLI process
never imports torch. Running the demo again resumes an unfinished demo run, or starts a new one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from cream_engine.config import ExperimentConfig, from_dict, to_toml


def demo_config(tiny: bool) -> ExperimentConfig:
    """A `cream` run sized for 2 CPU cores: 2 iterations of 8 prompts x 4 responses."""
    model = "bundled:tiny-random" if tiny else "bundled:smollm2-135m-instruct"
    return from_dict({
        "run": {"name": "demo-tiny" if tiny else "demo", "method": "cream", "model": model,
                "iterations": 2},
        "data": {"prompts_per_iteration": 8},
        "generate": {"n": 4, "max_new_tokens": 64 if not tiny else 24},
        "judge": {"samples": 1, "max_new_tokens": 0},
        "train": {"learning_rate": 5e-6, "batch_size": 2},
    })


def run_demo(home: Path, tiny: bool, tui: bool) -> int:
    from cream_engine.store import open_store
    from cream_tui.cli import run_foreground

    config = demo_config(tiny)
    say = lambda m: typer.echo(f"cream demo: {m}", err=True)  # noqa: E731
    say(f"preparing {config.run.model} under {home} (the first time converts the bundled "
        "GGUF once; later runs reuse the folder)")
    proc = subprocess.run([sys.executable, "-m", "cream_engine", "--home", str(home),
                           "prepare-model", config.run.model], stdout=subprocess.DEVNULL)
    if proc.returncode != 0:
        return proc.returncode
    path = home / "demo" / f"{config.run.name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_toml(config, comments=True), encoding="utf-8")
    say(f"config {path}: method cream, {config.run.iterations} iterations x "
        f"{config.data.prompts_per_iteration} prompts x {config.generate.n} responses")
    run_id, code = run_foreground(open_store(home), home, config)
    from cream_tui.cli import app

    app(["--home", str(home), "status", run_id], standalone_mode=False)
    if code == 0:
        say(f"done. Artifacts: {home / run_id}; compare methods by editing {path} "
            "([run] method = srlm | dpo) and `cream run` it.")
    if tui and sys.stdin.isatty() and sys.stdout.isatty():
        from cream_tui.app import run_app

        run_app(home, run_id)
    return code
