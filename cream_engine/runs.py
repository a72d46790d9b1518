"""Creating a run: what `cream run` and `cream submit` do before any model is loaded. The
config's inputs are checked, then the run gets an id, its folder with the resolved config, the
code version and a store row. A config error leaves nothing behind: the folder appears complete
(written beside, then renamed) and is removed again if the store refuses the row.

Light layer: standard library + the store. The prompts are measured with the model's own
tokenizer in a child process (`python -m cream_engine count-tokens`): no model library enters
this one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cream_engine import paths, vllmcheck
from cream_engine.config import ExperimentConfig, load_config, to_toml
from cream_engine.errors import EXIT_USAGE, ConfigError, CreamError, ModelError, NoGpuError
from cream_engine.evalsets import load_eval_set
from cream_engine.files import atomic_folder, remove_stale_temps
from cream_engine.modelfiles import check_model_folder, local_folder
from cream_engine.prompts import (
    PromptFile,
    limit_length,
    prompt_room,
    prompt_slices,
    read_prompt_file,
)
from cream_engine.seeds import read_seed_file
from cream_engine.store import Store

UNFINISHED = ("queued", "running", "failed", "cancelled")
CPU_VLLM_SHARE = 0.5  # of RAM: vLLM's CPU build refuses its GPU default (0.85) on a busy box


def check_inputs(config: ExperimentConfig, home: Path | None = None,
                 note: Callable[[str], None] | None = None) -> PromptFile:
    """Check what a config points at before anything is written, cheapest first: the prompt
    file (readable, UTF-8, valid lines, enough distinct prompts for every slice), the
    evaluation files, the seed SFT's data, local model folders (config, tokenizer, safetensors
    weights: the model, the evaluation judge, the Oracle's reward model), then every
    prompt's length in tokens with the model's own tokenizer. Returns the prompts that will be
    used. Raises a `CreamError` with one line naming the field or file."""
    found = read_prompt_file(config.data.prompts)
    prompt_slices(found.prompts, config.run.iterations, config.data.prompts_per_iteration,
                  config.run.seed)
    if config.eval.enabled:
        for spec in config.data.eval_sets:
            load_eval_set(spec, config.eval.max_items)
    folder = local_folder(config.run.model)
    if folder is not None:
        check_model_folder(folder, "[run] model")
    judge = local_folder(config.eval.judge) if config.eval.judge != "initial" else None
    if config.eval.enabled and judge is not None:
        check_model_folder(judge, "[eval] judge")
    if config.sft.enabled:
        read_seed_file(config.sft.data, config.sft.max_examples)
    oracle = local_folder(config.oracle.model) if config.run.method == "oracle" else None
    if oracle is not None:
        check_model_folder(oracle, "[oracle] model")
    prompt_room(config, None)  # (max_new_tokens past [train] max_length: no need to measure)
    check_libraries(config)
    if note:
        note(f"counting the tokens of {len(found.prompts)} prompts with the tokenizer of "
             f"{config.run.model}…")
    fsdp = config.train.processes != 1 and config.train.strategy == "fsdp"
    measured = measure_model(config, home or paths.data_home(), layers=fsdp)
    if fsdp and measured.get("layer_classes") == []:
        raise ConfigError(f"[train] strategy = 'fsdp': model {config.run.model!r} names no "
                          "decoder layer for FSDP to wrap; use strategy = 'ddp'")
    context, tokens = measured["context"], measured["tokens"]
    room, why = prompt_room(config, context)
    found = limit_length(found, tokens, room, config.data.long_prompts, why)
    prompt_slices(found.prompts, config.run.iterations, config.data.prompts_per_iteration,
                  config.run.seed)
    return found


def check_libraries(config: ExperimentConfig) -> None:
    """What the config asks for is installed: DeepSpeed for its strategy, vLLM for its
    backend (found without importing either)."""
    train = config.train
    if train.processes != 1 and train.strategy == "deepspeed" \
            and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError("[train] strategy = 'deepspeed' needs DeepSpeed: pip install "
                          "deepspeed (or use strategy = 'fsdp')")
    if config.generate.backend == "vllm" and vllmcheck.installed_build() is None:
        raise ConfigError(vllmcheck.vllm_usable(cuda=False, build=None))


def check_processes(config: ExperimentConfig, gpus: int, cpus: int | None = None) -> None:
    """`[train] processes` against what the job will have: its GPUs, or this machine's cores
    when it runs on the CPU; and the vLLM build installed against the job's device. Raises
    `NoGpuError` (exit 3) or `ConfigError` (exit 2)."""
    if config.generate.backend == "vllm":  # the build installed must fit the job's device
        reason = vllmcheck.vllm_usable(cuda=gpus > 0)
        if reason:
            raise ConfigError(reason)
        share = config.generate.gpu_memory_utilization
        if not gpus and share > CPU_VLLM_SHARE:
            raise ConfigError(f"[generate] gpu_memory_utilization = {share}: on vLLM's CPU "
                              "build it is the share of RAM reserved for the KV cache; use "
                              "about 0.1")
    wanted = config.train.processes
    if wanted == "auto" or wanted == 1:
        return
    if gpus:
        if wanted > gpus:
            raise NoGpuError(f"[train] processes = {wanted}: the job has {gpus} GPU(s) (ask "
                             "for more with --gpus, or use processes = 'auto')")
        return
    cpus = cpus or os.cpu_count() or 1
    if wanted > cpus:
        raise ConfigError(f"[train] processes = {wanted}: this machine has {cpus} CPU cores "
                          "and no GPU for the job")


def count_tokens(config: ExperimentConfig, home: Path) -> tuple[int | None, list[int]]:
    """(the model's context, each distinct prompt's templated length in tokens), measured by
    the model's own tokenizer in a child process (transformers never enters this one): a
    few seconds."""
    measured = measure_model(config, home)
    return measured["context"], measured["tokens"]


def measure_model(config: ExperimentConfig, home: Path, *, layers: bool = False) -> dict:
    """`count_tokens`'s child's answer: {"context", "tokens"} and, with `layers`, the
    decoder-layer classes FSDP would wrap ("layer_classes": a list, or None if unknown)."""
    cmd = [sys.executable, "-m", "cream_engine", "--home", str(home), "count-tokens",
           config.run.model, config.data.prompts]
    if config.run.trust_remote_code:
        cmd.append("--trust-remote-code")
    if layers:
        cmd.append("--layer-classes")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        try:
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            if "context" in out and "tokens" in out:
                return out
        except (IndexError, ValueError):
            pass
    errors = [line for line in proc.stderr.splitlines() if line.startswith("cream: error: ")]
    if errors and proc.returncode == EXIT_USAGE:
        raise ModelError(f"[run] model = {config.run.model!r}: "
                         + errors[-1][len("cream: error: "):])
    last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise CreamError(f"[run] model = {config.run.model!r}: counting the prompts' tokens "
                     f"failed (exit {proc.returncode}: {last})")


def load_checked(path: Path, overrides: list[str] | None = None, home: Path | None = None,
                 note: Callable[[str], None] | None = None, gpus: int | None = None
                 ) -> tuple[ExperimentConfig, PromptFile]:
    """A config file, loaded and validated, with the files it points at checked: what
    `cream validate`, `submit` and `run` and the dashboard's submit all accept. With `gpus`
    (the job's), `[train] processes` is checked against them first. Returns the config and
    the prompts it will use."""
    config = load_config(path, overrides)
    if gpus is not None:
        check_processes(config, gpus)
    return config, check_inputs(config, home, note)


def config_hash(config: ExperimentConfig) -> str:
    return hashlib.sha256(to_toml(config).encode()).hexdigest()[:16]


def git_commit(cwd: Path) -> str | None:
    """The commit of the user's working directory (with "+dirty" when it has changes)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def new_run_id(name: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{secrets.token_hex(2)}"


def create_run(store: Store, home: Path, config: ExperimentConfig, *,
               status: str = "queued", cwd: Path | None = None) -> str:
    """Snapshot `config` into `<home>/<run-id>/config.toml` and record the run."""
    run_id = new_run_id(config.run.name)
    final = paths.run_dir(home, run_id)
    text = to_toml(config)
    if home.is_dir():  # (what a create killed while writing its folder left behind)
        remove_stale_temps(home)
    with atomic_folder(final) as tmp:
        (tmp / paths.CONFIG_NAME).write_text(text, encoding="utf-8")
    try:
        store.create_run(run_id, name=config.run.name, method=config.run.method,
                         model=config.run.model, iterations=config.run.iterations,
                         run_dir=str(final), config_toml=text, config_hash=config_hash(config),
                         git_commit=git_commit(cwd or Path.cwd()), status=status)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return run_id


def delete_run(store: Store, home: Path, run_id: str) -> None:
    """Undo `create_run` of a run nothing ran yet (its submission failed): its rows and folder."""
    with store.atomic():
        for table in ("events", "jobs", "runs"):
            store.execute(f"DELETE FROM {table} WHERE {'id' if table == 'runs' else 'run_id'}"
                          " = ?", [run_id])
    shutil.rmtree(paths.run_dir(home, run_id), ignore_errors=True)


def find_resumable(store: Store, config: ExperimentConfig) -> dict | None:
    """The newest unfinished run of exactly this config (same name and resolved values)."""
    run = store.newest_run_with_config(config.run.name, config_hash(config))
    return run if run and run["status"] in UNFINISHED else None


def load_run_config(run_dir: Path) -> ExperimentConfig:
    """The snapshot of a run: paths in it are already absolute. No environment overrides."""
    return load_config(run_dir / paths.CONFIG_NAME, environ={})


def create_or_resume(store: Store, home: Path, config: ExperimentConfig, *,
                     new: bool = False) -> tuple[str, bool]:
    """(run id, resumed?): the newest unfinished run of this exact config, else a new one."""
    existing = None if new else find_resumable(store, config)
    if existing:
        return existing["id"], True
    return create_run(store, home, config), False
