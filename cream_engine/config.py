"""Experiment configuration: one TOML file, one frozen dataclass per section.

Every field carries its default and a one-line help in `field(metadata=...)`; `__post_init__`
checks types, choices and ranges and names the bad field and value. Unknown keys are rejected
with a close-match suggestion, so a typo never silently falls back to a default.

Precedence: defaults < file < environment (`CREAM_<SECTION>_<KEY>`) < flags (`--set a.b=v`).

Light layer: standard library only.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from cream_engine.config_stages import OracleConfig, SftConfig
from cream_engine.errors import ConfigError
from cream_engine.sections import Section, _f, _show

METHODS = ("srlm", "cream", "scir", "dpo", "oracle")
# a run name is part of the run's id and folder name: portable on every filesystem, short
# enough to leave room for the id's date and suffix within a 255-byte file name
RUN_NAME_MAX = 64
RUN_NAME_RULE = (f"1 to {RUN_NAME_MAX} ASCII letters, digits, '-', '_' or '.', starting with a "
                 "letter or digit")
BUNDLED_MODELS = ("smollm2-135m-instruct", "tiny-random")
BUNDLED_PROMPTS = "bundled:prompts"
STRATEGIES = ("ddp", "fsdp", "deepspeed")


def valid_run_name(name: str) -> bool:
    return (0 < len(name) <= RUN_NAME_MAX and name[0].isascii() and name[0].isalnum()
            and all(c.isascii() and (c.isalnum() or c in "-_.") for c in name))


@dataclass(frozen=True)
class RunConfig(Section):
    _name = "run"
    name: str = _f("experiment", f"a short name for the run: {RUN_NAME_RULE}")
    method: str = _f("cream", "srlm (judge rewards), cream (consistency-regularized), "
                     "scir (self-consistent internal rewards), dpo (implicit reward, C = 1) or oracle (an "
                     "external reward model ranks: [oracle] model)",
                     choices=METHODS)
    model: str = _f("bundled:smollm2-135m-instruct", "starting model M0: a Hugging Face id, a "
                    "local folder, or bundled:smollm2-135m-instruct / bundled:tiny-random")
    iterations: int = _f(2, "self-rewarding iterations T (M0 -> ... -> MT)", lo=1, hi=100)
    seed: int = _f(0, "seed for prompt slices, sampling and training", lo=0)
    trust_remote_code: bool = _f(False, "allow model code from the hub (off unless you trust it)")

    def check(self) -> None:
        if not valid_run_name(self.name):
            shown = _show(self.name if len(self.name) <= 80 else self.name[:77] + "...")
            raise ConfigError(f"[run] name = {shown} ({len(self.name)} characters): use "
                              f"{RUN_NAME_RULE}")
        if self.model.startswith("bundled:") and self.model[8:] not in BUNDLED_MODELS:
            known = ", ".join("bundled:" + m for m in BUNDLED_MODELS)
            raise ConfigError(f"[run] model = {_show(self.model)}: unknown bundled model "
                              f"(known: {known})")


@dataclass(frozen=True)
class DataConfig(Section):
    _name = "data"
    prompts: str = _f(BUNDLED_PROMPTS, "prompt set: bundled:prompts or a JSONL file of "
                      '{"prompt": ...} or {"messages": [...]} lines (relative to this file)')
    prompts_per_iteration: int = _f(16, "prompts in each iteration's slice (slices are "
                                    "disjoint across iterations)", lo=1)
    eval_sets: tuple[str, ...] = _f(("bundled:mc", "bundled:arith"), "evaluation sets: "
                                    "bundled:mc, bundled:arith, or ARC / OpenBookQA / SIQA / "
                                    "GSM8K files (JSONL or Parquet)")
    long_prompts: str = _f("refuse", "a prompt that leaves no room for [generate] "
                           "max_new_tokens within the model's context and [train] max_length: "
                           "refuse (validate and submit name it) or skip (left out, counted)",
                           choices=("refuse", "skip"))


@dataclass(frozen=True)
class GenerateConfig(Section):
    _name = "generate"
    backend: str = _f("auto", "auto (vLLM when installed and a GPU is present, else hf), "
                      "hf or vllm", choices=("auto", "hf", "vllm"))
    n: int = _f(4, "responses sampled per prompt (N)", lo=2, hi=64)
    temperature: float = _f(0.8, "sampling temperature", lo=0.0, hi=2.0, lo_open=True)
    top_p: float = _f(0.95, "nucleus sampling mass", lo=0.0, hi=1.0, lo_open=True)
    top_k: int = _f(0, "sample from the k most likely tokens only (0 = off, in both backends: "
                    "transformers' own default of 50 is never applied)", lo=0)
    max_new_tokens: int = _f(96, "tokens generated per response at most", lo=1, hi=32768)
    batch_size: int = _f(8, "prompts per generation batch (hf backend)", lo=1)
    tensor_parallel_size: int = _f(1, "vllm: GPUs one engine shards the model over; the job's "
                                   "GPUs / this = engines generating in parallel (data "
                                   "parallel)", lo=1)
    gpu_memory_utilization: float = _f(0.85, "vllm: fraction of each GPU's memory an engine "
                                       "reserves (on vLLM's CPU build: of RAM, about 0.1)",
                                       lo=0.0, hi=1.0, lo_open=True)


@dataclass(frozen=True)
class JudgeConfig(Section):
    _name = "judge"
    score_mode: str = _f("expected", "parse: read the last 'Score: k' the judge writes; "
                         "expected: expected value of the next-token digits 0-5 after "
                         "'Score: '", choices=("parse", "expected"))
    samples: int = _f(3, "judgments per response, averaged (K)", lo=1, hi=16)
    max_new_tokens: int = _f(96, "tokens of justification the judge may write", lo=0)
    temperature: float = _f(0.7, "judge sampling temperature (K > 1 needs > 0)", lo=0.0,
                            hi=2.0)
    batch_size: int = _f(8, "judge prompts per batch", lo=1)

    def check(self) -> None:
        if self.score_mode == "parse" and self.max_new_tokens == 0:
            raise ConfigError("[judge] max_new_tokens = 0: score_mode = 'parse' needs the "
                              "judge to write (use >= 8, or score_mode = 'expected')")
        if self.samples > 1 and self.max_new_tokens > 0 and self.temperature == 0:
            raise ConfigError(f"[judge] temperature = 0: {self.samples} greedy judgments "
                              "would be identical (use samples = 1 or temperature > 0)")


@dataclass(frozen=True)
class ConsistencyConfig(Section):
    _name = "consistency"
    mode: str = _f("average", "average: one dataset-mean C for every pair (CREAM's main "
                   "method); dynamic: each pair's own C_j", choices=("average", "dynamic"))
    batch_size: int = _f(8, "sequences per log-probability batch", lo=1)


@dataclass(frozen=True)
class TrainConfig(Section):
    _name = "train"
    beta: float = _f(0.1, "DPO temperature beta", lo=0.0, lo_open=True)
    learning_rate: float = _f(5e-6, "peak learning rate (about 1e-6 full, 1e-5..1e-4 LoRA)",
                              lo=0.0, hi=1.0, lo_open=True)
    epochs: int = _f(1, "passes over each iteration's pairs", lo=1, hi=100)
    batch_size: int = _f(2, "pairs per batch, split over the training processes (a multiple "
                         "of processes)", lo=1)
    gradient_accumulation: int = _f(1, "batches accumulated per optimizer step", lo=1)
    lora: bool = _f(False, "train a LoRA adapter (merged into the checkpoint) instead of "
                    "all weights")
    lora_rank: int = _f(16, "LoRA rank r", lo=1)
    lora_alpha: int = _f(32, "LoRA alpha", lo=1)
    max_length: int = _f(512, "prompt + response tokens at most (longer are truncated)", lo=8)
    dtype: str = _f("auto", "auto (bf16 on GPU, fp32 on CPU), float32 or bfloat16",
                    choices=("auto", "float32", "bfloat16"))
    warmup_ratio: float = _f(0.1, "fraction of steps for learning-rate warm-up", lo=0.0, hi=1.0)
    weight_decay: float = _f(0.01, "AdamW weight decay", lo=0.0)
    logging_steps: int = _f(1, "optimizer steps between metric rows", lo=1)
    processes: int | str = _f(1, "training processes: 1, N, or auto (one per GPU of the job); "
                              "with more than 1 the trainer runs under torchrun")
    strategy: str = _f("ddp", "how several processes share the model: ddp (a full replica "
                       "each), fsdp (full-shard, each decoder layer wrapped) or deepspeed "
                       "(ZeRO-3, needs DeepSpeed installed)", choices=STRATEGIES)
    activation_checkpointing: bool = _f(False, "recompute activations in the backward pass: "
                                        "less memory, slower steps")
    launcher: str = _f("auto", "how several processes start: local (children of the engine), "
                       "srun (across a Slurm job's nodes) or auto (srun when the job spans "
                       "several nodes)", choices=("auto", "local", "srun"))
    save_every: int = _f(50, "optimizer steps between checkpoints a killed train stage resumes "
                         "from (0 = never)", lo=0)

    def check(self) -> None:
        p = self.processes
        if isinstance(p, str) and p != "auto" or isinstance(p, int) and not 1 <= p <= 1024:
            raise ConfigError(f"[train] processes = {_show(p)}: must be auto or an integer "
                              "from 1 to 1024")
        if isinstance(p, int) and self.batch_size % p:
            raise ConfigError(f"[train] batch_size = {self.batch_size}: must be a multiple of "
                              f"processes = {p} (each process takes an equal share)")
        if self.lora and p != 1 and self.strategy != "ddp":
            raise ConfigError(f"[train] strategy = {_show(self.strategy)}: LoRA trains with "
                              "ddp (its frozen weights are replicated, its adapter is small)")


@dataclass(frozen=True)
class ScirConfig(Section):
    _name = "scir"
    alpha: float = _f(1.0, "weight of the consistency loss L_con", lo=0.0)
    lambda_h: float = _f(0.1, "weight of the entropy (confidence) term in L_con", lo=0.0)
    margin: float = _f(0.0, "both RMs must prefer the same response with probability above "
                       "0.5 + margin", lo=0.0, hi=0.5, hi_open=True)
    pair_selection: str = _f("judge-extremes", "unlabeled pair per prompt: judge-extremes "
                             "(best and worst by the judge) or random",
                             choices=("judge-extremes", "random"))


@dataclass(frozen=True)
class EvalConfig(Section):
    _name = "eval"
    enabled: bool = _f(True, "evaluate M0 once and every new model M_t+1")
    max_items: int = _f(100, "items per evaluation set at most, first in file order (0 = all)",
                        lo=0)
    generative: bool = _f(True, "score by greedy answers ending in 'Answer: X' (CREAM's "
                          "protocol)")
    loglik: bool = _f(True, "score multiple choice by option log-likelihood "
                      "(lm-evaluation-harness's protocol)")
    max_new_tokens: int = _f(192, "tokens per generated evaluation answer", lo=1)
    win_rate_prompts: int = _f(16, "held-out prompts for the win rate of M_t+1 over M_t "
                               "(0 = skip)", lo=0)
    judge: str = _f("initial", "fixed judge of the win rate and score: initial (the frozen "
                    "starting model M0) or a model id / folder")
    batch_size: int = _f(8, "evaluation sequences per batch", lo=1)
    every: int = _f(1, "evaluate every k-th new model M_t+1 (the last one always; M0 once, "
                    "shared by runs with the same model and evaluation settings)", lo=1)

    def check(self) -> None:
        if self.judge.startswith("bundled:") and self.judge[8:] not in BUNDLED_MODELS:
            known = ", ".join("bundled:" + m for m in BUNDLED_MODELS)
            raise ConfigError(f"[eval] judge = {_show(self.judge)}: unknown bundled model "
                              f"(known: {known})")
        if self.enabled and not (self.generative or self.loglik or self.win_rate_prompts):
            raise ConfigError("[eval] enabled = true with generative, loglik and "
                              "win_rate_prompts all off: nothing to evaluate (set enabled = "
                              "false)")


SECTIONS: dict[str, type[Section]] = {
    "run": RunConfig, "sft": SftConfig, "data": DataConfig, "generate": GenerateConfig,
    "judge": JudgeConfig, "consistency": ConsistencyConfig, "train": TrainConfig,
    "scir": ScirConfig, "oracle": OracleConfig, "eval": EvalConfig,
}


@dataclass(frozen=True)
class ExperimentConfig:
    run: RunConfig = field(default_factory=RunConfig)
    sft: SftConfig = field(default_factory=SftConfig)
    data: DataConfig = field(default_factory=DataConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    scir: ScirConfig = field(default_factory=ScirConfig)
    oracle: OracleConfig = field(default_factory=OracleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: {f.name: _plain(getattr(getattr(self, name), f.name))
                       for f in dataclasses.fields(SECTIONS[name])} for name in SECTIONS}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _suggest(key: str, options: list[str]) -> str:
    close = difflib.get_close_matches(key, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def from_dict(data: Mapping[str, Any], base_dir: Path | None = None) -> ExperimentConfig:
    """Build a config from nested dicts, rejecting unknown sections and keys.

    Relative file paths (prompts, eval sets, a local model folder) are resolved against
    `base_dir`, the folder of the TOML file, so a snapshot of the config works anywhere.
    """
    sections: dict[str, Section] = {}
    for name, values in data.items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown section [{name}]{_suggest(name, list(SECTIONS))}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"[{name}] must be a table, got {_show(values)}")
        known = [f.name for f in dataclasses.fields(SECTIONS[name])]
        for key in values:
            if key not in known:
                raise ConfigError(f"unknown key [{name}] {key}{_suggest(key, known)}")
        sections[name] = SECTIONS[name](**values)
    config = ExperimentConfig(**sections)
    if config.run.method == "oracle" and not config.oracle.model:
        raise ConfigError("[oracle] model is empty: method = 'oracle' ranks the responses with "
                          "an external reward model (a folder, a hub id, or bundled:tiny-reward)")
    return _resolve_paths(config, base_dir) if base_dir is not None else config


def _resolve_paths(config: ExperimentConfig, base_dir: Path) -> ExperimentConfig:
    def resolve(spec: str) -> str:
        if ":" in spec.split("/")[0] or spec.startswith("bundled:"):
            return spec
        p = Path(spec).expanduser()
        return str(p if p.is_absolute() else (base_dir / p).resolve())

    data = dataclasses.replace(config.data, prompts=resolve(config.data.prompts),
                               eval_sets=tuple(resolve(s) for s in config.data.eval_sets))
    model = config.run.model
    if _looks_like_path(model) or (base_dir / model).is_dir():
        model = resolve(model)
    run = dataclasses.replace(config.run, model=model)
    judge = config.eval.judge
    if judge != "initial" and (_looks_like_path(judge) or (base_dir / judge).is_dir()):
        judge = resolve(judge)
    oracle = config.oracle.model
    if oracle and (_looks_like_path(oracle) or (base_dir / oracle).is_dir()):
        oracle = resolve(oracle)
    return dataclasses.replace(config, data=data, run=run,
                               eval=dataclasses.replace(config.eval, judge=judge),
                               sft=dataclasses.replace(config.sft, data=resolve(config.sft.data)),
                               oracle=dataclasses.replace(config.oracle, model=oracle))


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~")) or spec in (".", "..")


def env_overrides(environ: Mapping[str, str]) -> list[str]:
    """`CREAM_TRAIN_BETA=0.2` -> `train.beta=0.2` for every known section."""
    out = []
    for key, value in sorted(environ.items()):
        if not key.startswith("CREAM_"):
            continue
        section, _, name = key[len("CREAM_"):].lower().partition("_")
        if section in SECTIONS and name:
            out.append(f"{section}.{name}={value}")
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides; the value is parsed as TOML (bare words = strings)."""
    merged = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for item in overrides:
        dotted, sep, raw = item.partition("=")
        section, dot, key = dotted.strip().partition(".")
        if not sep or not dot or not key:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        merged.setdefault(section, {})[key] = value
    return merged


def read_text(path: Path, what: str, error: type[ConfigError] = ConfigError) -> str:
    """A UTF-8 text file; one `error` line naming it when missing, a folder or not UTF-8."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a file") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None


def load_config(path: str | Path, overrides: list[str] | None = None,
                environ: Mapping[str, str] | None = None) -> ExperimentConfig:
    """Load and validate a TOML experiment file; every error is one `ConfigError` line."""
    path = Path(path)
    text = read_text(path, "file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    if not data:  # (a config of all defaults is written on purpose, never by accident)
        raise ConfigError(f"{path}: empty config: start from `cream init`")
    env = env_overrides(os.environ if environ is None else environ)
    data = apply_overrides(data, env + list(overrides or []))
    try:
        return from_dict(data, base_dir=path.resolve().parent)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except TypeError as e:  # a dataclass refusing an argument we did not foresee
        raise ConfigError(f"{path}: {e}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def to_toml(config: ExperimentConfig, comments: bool = False) -> str:
    """Write a config as TOML; with `comments`, each key is preceded by its help line."""
    lines: list[str] = []
    if comments:
        lines += ["# cream experiment config. Every key is optional: its default is shown.",
                  "# Check it with `cream validate FILE`; run it with `cream run FILE`.", ""]
    for name, cls in SECTIONS.items():
        lines.append(f"[{name}]")
        for f in dataclasses.fields(cls):
            if comments:
                lines.append(f"# {f.metadata['help']}")
            lines.append(f"{f.name} = {_toml_value(getattr(getattr(config, name), f.name))}")
        lines.append("")
    return "\n".join(lines)


def field_help() -> dict[str, dict[str, str]]:
    """Help line of every field, by section (for docs and `cream init`)."""
    return {name: {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}
            for name, cls in SECTIONS.items()}
