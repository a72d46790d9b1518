"""`cream demo`: the first-run experience on the bundled SmolLM2-135M-Instruct.

Everything heavy happens in child processes (`python -m cream_engine ...`), so the CLI process
never imports torch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from cream_engine.config import ExperimentConfig, from_dict, to_toml


def demo_config(tiny: bool) -> ExperimentConfig:
    """A small `cream` run sized for 2 CPU cores."""
    model = "bundled:tiny-random" if tiny else "bundled:smollm2-135m-instruct"
    return from_dict({
        "run": {"name": "demo-tiny" if tiny else "demo", "method": "cream", "model": model,
                "iterations": 2},
        "data": {"prompts_per_iteration": 8},
        "generate": {"n": 4, "max_new_tokens": 48},
        "judge": {"samples": 1, "max_new_tokens": 0},
        "train": {"learning_rate": 5e-6, "batch_size": 2},
    })


def run_demo(home: Path, tiny: bool, tui: bool) -> int:
    config = demo_config(tiny)
    typer.echo(f"cream demo: preparing {config.run.model} under {home} "
               "(the first time converts the bundled GGUF; later runs reuse the folder)",
               err=True)
    proc = subprocess.run([sys.executable, "-m", "cream_engine", "--home", str(home),
                           "prepare-model", config.run.model])
    if proc.returncode != 0:
        return proc.returncode
    path = home / "demo" / f"{config.run.name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_toml(config, comments=True), encoding="utf-8")
    typer.echo(f"cream demo: wrote {path}", err=True)
    typer.echo("cream demo: the training engine is not built yet, so the demo stops here. "
               f"It would now run: cream run {path}", err=True)
    return 0
