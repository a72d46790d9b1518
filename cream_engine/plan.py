"""`cream plan`: the memory each stage of a run needs per GPU, from the model's shape and the
config alone, and whether it fits the GPUs at hand (else the RAM of a CPU machine); when it does
not, the first change that makes it fit. The worker asks the same question before it starts a
job (admission.py), so a job that cannot fit fails at once with exit 3 and the reason.

Every number is in GiB (2^30 bytes, as `nvidia-smi` counts: an "80 GB" card has 80 GiB); the
formulas are in memory.py. A GPU holds a stage when the estimate is at most USABLE_FRACTION of
its memory: the caching allocator's fragmentation and what the estimate leaves out take the
rest. The stages that load a model: generate (M_t samples N responses per prompt), score (the
pointwise judge for SRLM and SCIR, then log-probabilities under up to three models, one at a
time), train, and evaluate (M_t+1's answers, then no-grad passes of it and of the judge).
Consistency and pairs load no model.

Light layer: standard library only.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cream_engine.config import ExperimentConfig
from cream_engine.errors import CreamError, UsageError
from cream_engine.memory import (
    GIB,
    SHARDED,
    Layout,
    Parts,
    forward_parts,
    generation_parts,
    train_parts,
    vllm_cpu_parts,
    vllm_minimum,
)
from cream_engine.shapes import ModelShape, read_shape

USABLE_FRACTION = 0.9
JUDGE_TEMPLATE_TOKENS = 384  # the pointwise rubric around prompt and response (336 with SmolLM2)
JUDGE_METHODS = ("srlm", "scir")  # methods whose score stage runs the pointwise judge
GPUS_RE = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\d+(?:\.\d+)?)\s*(?:g|gb|gib)?\s*$", re.IGNORECASE)


# -- what the plan is made against ----------------------------------------------------------


@dataclass(frozen=True)
class Devices:
    """The GPUs a job gets (count 0: the CPU, memory then the machine's RAM)."""

    count: int
    memory_gib: float      # each GPU's (the smallest one's), or the RAM
    source: str            # where the numbers come from: --gpus, NVML, RAM
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)

    @property
    def on_gpu(self) -> bool:
        return self.count > 0

    @property
    def usable_gib(self) -> float:
        return self.memory_gib * USABLE_FRACTION

    def describe(self) -> str:
        if not self.on_gpu:
            return f"the CPU ({self.cpus} cores, {self.memory_gib:.1f} GiB RAM)"
        return f"{self.count} x {self.memory_gib:g} GiB GPU{'s' if self.count > 1 else ''}"


def parse_gpus(text: str) -> Devices:
    """`--gpus 8x80`: 8 GPUs of 80 GiB each."""
    m = GPUS_RE.match(text)
    if not m or int(m.group(1)) < 1 or float(m.group(2)) <= 0:
        raise UsageError(f"--gpus {text!r}: expected NxMEM, the number of GPUs and each one's "
                         "memory in GB, e.g. 8x80 or 1x24")
    return Devices(int(m.group(1)), float(m.group(2)), f"--gpus {text.strip()}")


def ram_gib() -> float:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / GIB
    except (OSError, ValueError):
        return 0.0


def cpu_devices() -> Devices:
    return Devices(0, round(ram_gib(), 1), "RAM")


def gpu_devices(totals_mb: list[float], source: str = "NVML",
                cpus: int | None = None) -> Devices:
    """GPUs of these total memories (NVML's MiB), planned by the smallest of them."""
    return Devices(len(totals_mb), round(min(totals_mb) / 1024, 1), source,
                   cpus or os.cpu_count() or 1)


# -- the plan ---------------------------------------------------------------------------------


@dataclass
class StagePlan:
    stage: str
    how: str                   # backend and layout: "hf, 1 GPU", "FSDP over 8", …
    gpus: int                  # GPUs it uses (0: the CPU)
    need_gib: float            # per GPU; on the CPU, the RAM of all its processes
    parts: dict[str, float]    # what the need is made of, GiB
    fits: bool
    verdict: str               # "fits on 1 GPU", "does not fit; fits with LoRA", …
    advice: str | None = None  # what to change when it does not fit


@dataclass
class Plan:
    model: ModelShape
    devices: Devices
    stages: list[StagePlan]

    @property
    def fits(self) -> bool:
        return all(s.fits for s in self.stages)

    @property
    def reason(self) -> str | None:
        """Why the run cannot run on these devices, one line (None when it can)."""
        bad = [s for s in self.stages if not s.fits]
        if not bad:
            return None
        s, dev = bad[0], self.devices
        if not s.parts:  # more processes or tensor-parallel GPUs than the job has
            line = f"{s.stage}: {s.advice}"
        else:
            line = (f"{s.stage} needs {s.need_gib:.1f} GiB {'per GPU' if dev.on_gpu else 'of RAM'}"
                    f" ({s.how}), more than the {dev.usable_gib:.1f} GiB usable of "
                    f"{dev.memory_gib:g} GiB")
            _, _, alternative = s.verdict.partition("; ")  # ("does not fit; fits with …")
            line += (f"; {alternative}" if alternative else "") + \
                (f": {s.advice}" if s.advice else "")
        others = [b.stage for b in bad[1:]]
        return line + (f" (also: {', '.join(others)})" if others else "")

    def summary(self) -> str:
        """One line: what fits, or which stages do not."""
        unit = "per GPU" if self.devices.on_gpu else "of RAM"
        if self.fits:
            top = max(self.stages, key=lambda s: s.need_gib)
            return (f"fits on {self.devices.describe()}: the largest stage is {top.stage} at "
                    f"{top.need_gib:.1f} GiB {unit} ({top.how})")
        return f"does not fit on {self.devices.describe()}: " + "; ".join(
            f"{s.stage} needs {s.need_gib:.1f} GiB {unit}, {s.verdict}" if s.parts else
            f"{s.stage} {s.verdict}" for s in self.stages if not s.fits)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model.to_json(),
                "devices": {"gpus": self.devices.count, "memory_gib": self.devices.memory_gib,
                            "usable_gib": round(self.devices.usable_gib, 1),
                            "source": self.devices.source, "cpus": self.devices.cpus},
                "stages": [vars(s) for s in self.stages], "fits": self.fits,
                "reason": self.reason, "summary": self.summary()}


def make_plan(config: ExperimentConfig, devices: Devices,
              shape: ModelShape | None = None) -> Plan:
    """The plan of `config` on `devices`; `ModelError` when the model's shape is unknown."""
    shape = shape or read_shape(config.run.model)
    ctx = _Ctx(config, devices, shape)
    stages = ([_sft(ctx)] if config.sft.enabled else []) + [
        _generate(ctx), _score(ctx), _train(ctx)]
    if config.eval.enabled:
        stages.append(_evaluate(ctx))
    return Plan(shape, devices, stages)


# -- the stages -------------------------------------------------------------------------------


@dataclass
class _Ctx:
    config: ExperimentConfig
    devices: Devices
    shape: ModelShape

    @property
    def infer_bytes(self) -> int:
        """The dtype models are loaded in outside training (RunContext.dtype)."""
        dtype = self.config.train.dtype
        return 2 if dtype == "bfloat16" or (dtype == "auto" and self.devices.on_gpu) else 4

    @property
    def backend(self) -> str:
        """`[generate] backend`; auto: vLLM when installed (found, not imported) on a GPU."""
        backend = self.config.generate.backend
        if backend == "auto":
            vllm = importlib.util.find_spec("vllm") is not None
            return "vllm" if vllm and self.devices.on_gpu else "hf"
        return backend

    @property
    def budget(self) -> float:
        return self.devices.usable_gib * GIB

    @property
    def one(self) -> str:
        return "1 GPU" if self.devices.on_gpu else "CPU"

    def single(self, name: str, how: str, parts: Parts, advice: str) -> StagePlan:
        """A stage on one GPU (or the CPU)."""
        need = sum(parts.values())
        fits = need <= self.budget
        verdict = ("fits" if fits else "does not fit") + (" on 1 GPU" if self.devices.on_gpu
                                                          else " in RAM")
        return StagePlan(name, f"{how}, {self.one}", min(1, self.devices.count),
                         round(need / GIB, 1), _gib(parts), fits, verdict,
                         None if fits else advice)


def _gib(parts: Parts) -> dict[str, float]:
    return {k: round(v / GIB, 1) for k, v in parts.items()}


def _worse(a: StagePlan, b: StagePlan, how: str | None = None) -> StagePlan:
    """Of two parts of one stage, the one that does not fit, else the larger; fits if both."""
    worse = a if (not a.fits, a.need_gib) >= (not b.fits, b.need_gib) else b
    return replace(worse, how=how or worse.how, fits=a.fits and b.fits)


def _generation(ctx: _Ctx, name: str, seqs: int, length: int, prompt: int) -> StagePlan:
    """Generation through the configured backend: hf on one GPU, or vLLM engines (each over
    `tensor_parallel_size` GPUs, as many engines as the GPUs allow)."""
    shape, g, b = ctx.shape, ctx.config.generate, ctx.infer_bytes
    if ctx.backend == "hf":
        weights_fit = shape.parameters * b < ctx.budget
        return ctx.single(name, "hf", generation_parts(shape, seqs, length, prompt, b),
                          f"lower [generate] batch_size = {g.batch_size}" if weights_fit else
                          'its weights alone do not fit: use [generate] backend = "vllm" with '
                          "tensor_parallel_size over several GPUs")
    reserved = g.gpu_memory_utilization * ctx.devices.memory_gib * GIB
    if not ctx.devices.on_gpu:  # vLLM's CPU build: the fraction is of RAM, for the KV cache
        return ctx.single(name, "vllm", vllm_cpu_parts(shape, reserved, b),
                          "lower [generate] gpu_memory_utilization (on the CPU: of RAM)")
    tp, count = g.tensor_parallel_size, ctx.devices.count
    if tp > count:
        return StagePlan(name, f"vllm, tensor parallel {tp}", tp, 0.0, {}, False,
                         f"needs {tp} GPUs", f"[generate] tensor_parallel_size = {tp} but "
                         f"the job has {count} GPU(s)")
    need = vllm_minimum(shape, length, b, tp)
    parts = {**need, "KV cache": max(0.0, reserved - sum(need.values()) + need["KV cache"])}
    engines = count // tp
    how = f"vllm, {engines} engine{'s' if engines > 1 else ''} x tensor parallel {tp}"
    if sum(need.values()) <= reserved:
        return StagePlan(name, how, engines * tp, round(reserved / GIB, 1), _gib(parts), True,
                         f"fits: {engines} engine{'s' if engines > 1 else ''} of {tp} GPU"
                         + ("s" if tp > 1 else ""))
    bigger = [k for k in (2, 4, 8, 16) if tp < k <= count and shape.heads % k == 0
              and sum(vllm_minimum(shape, length, b, k).values()) <= reserved]
    return StagePlan(name, how, engines * tp, round(sum(need.values()) / GIB, 1), _gib(need),
                     False, f"does not fit; fits with tensor parallel {bigger[0]}" if bigger
                     else "does not fit", f"set [generate] tensor_parallel_size = {bigger[0]}"
                     if bigger else "raise [generate] gpu_memory_utilization, or use more GPUs")


def _generate(ctx: _Ctx) -> StagePlan:
    """M_t samples N responses for each prompt of a batch; prompt + response <= max_length
    (submit refuses or skips longer prompts)."""
    g, length = ctx.config.generate, ctx.config.train.max_length
    return _generation(ctx, "generate", g.batch_size * g.n, length,
                       max(1, length - g.max_new_tokens))


def _score(ctx: _Ctx) -> StagePlan:
    """Log π(y|x) of every response under up to three models, one at a time; SRLM and SCIR
    first have M_t grade each response K times (its rubric holds the prompt and response)."""
    c, b = ctx.config, ctx.infer_bytes
    logp = ctx.single("score", "hf", forward_parts(
        ctx.shape, c.consistency.batch_size * c.train.max_length, b),
        f"lower [consistency] batch_size = {c.consistency.batch_size}")
    if c.run.method not in JUDGE_METHODS:
        return logp
    judged = c.train.max_length + JUDGE_TEMPLATE_TOKENS
    if c.judge.max_new_tokens == 0:  # the score read from the next token: a forward pass
        judge = ctx.single("score", "hf", forward_parts(
            ctx.shape, c.generate.batch_size * judged, b),
            f"lower [generate] batch_size = {c.generate.batch_size}")
    else:
        judge = _generation(ctx, "score", c.generate.batch_size * c.judge.samples,
                            judged + c.judge.max_new_tokens, judged)
    return _worse(judge, logp, f"{judge.how.split(',')[0]} judge, hf log-probs, {ctx.one}")


def _evaluate(ctx: _Ctx) -> StagePlan:
    """M_t+1's greedy answers through the backend, then no-grad passes: option
    log-likelihoods, and the judge (M0, or [eval] judge) over prompts of two responses."""
    c = ctx.config
    answers = _generation(ctx, "evaluate", c.generate.batch_size,
                          c.train.max_length + c.eval.max_new_tokens, c.train.max_length)
    judge = ctx.shape
    if c.eval.judge != "initial":
        try:
            judge = read_shape(c.eval.judge)
        except CreamError:  # (validate and the engine say what is wrong with it)
            pass
    big = judge if judge.parameters > ctx.shape.parameters else ctx.shape
    passes = ctx.single("evaluate", "hf", forward_parts(
        big, c.eval.batch_size * 2 * c.train.max_length, ctx.infer_bytes),
        f"lower [eval] batch_size = {c.eval.batch_size}")
    return _worse(answers, passes)


# -- training ---------------------------------------------------------------------------------


def _sft(ctx: _Ctx) -> StagePlan:
    """The seed SFT: one process, [train]'s precision and LoRA setting, `[sft] batch_size`
    single sequences of `max_length` (counted as half as many pairs: the same tokens)."""
    t, s = ctx.config.train, ctx.config.sft
    as_pairs = replace(t, batch_size=-(-s.batch_size // 2), max_length=s.max_length,
                       processes=1)
    layout = Layout(t.lora, 1, "ddp", t.activation_checkpointing, t.dtype)
    parts = train_parts(ctx.shape, as_pairs, layout, ctx.devices.on_gpu, "dpo")
    advice = ("set [train] lora = true" if not t.lora else
              "lower [sft] batch_size or max_length, or set [train] activation_checkpointing")
    return ctx.single("sft", "seed SFT" + (", LoRA" if t.lora else ""), parts, advice)


def train_processes(config: ExperimentConfig, devices: Devices) -> int:
    """`[train] processes`; auto: one per GPU of the job (one on the CPU)."""
    p = config.train.processes
    return (devices.count or 1) if p == "auto" else int(p)


def _train(ctx: _Ctx) -> StagePlan:
    """Training as configured; when it does not fit, the first change that makes it fit."""
    t, dev, method = ctx.config.train, ctx.devices, ctx.config.run.method
    n = train_processes(ctx.config, dev)
    limit, unit = (dev.count, "GPU(s)") if dev.on_gpu else (dev.cpus, "CPU cores")
    if n > limit:
        return StagePlan("train", f"{n} processes", n, 0.0, {}, False, f"needs {n} {unit}",
                         f"[train] processes = {n} but the job has {limit} {unit}"
                         + (f' (submit with --gpus {n}, or set processes = "auto")'
                            if dev.on_gpu else ""))

    if n > 1 and t.batch_size % n:
        return StagePlan("train", f"{n} processes", min(n, dev.count), 0.0, {}, False,
                         f"batch does not split over {n}",
                         f"[train] batch_size = {t.batch_size} is split over the {n} "
                         f"processes: make it a multiple of {n}")

    def need(lay: Layout) -> float:  # per GPU; on the CPU the processes share the RAM
        per = sum(train_parts(ctx.shape, t, lay, dev.on_gpu, method).values())
        return per if dev.on_gpu else per * lay.processes

    layout = Layout(t.lora, n, t.strategy, t.activation_checkpointing, t.dtype)
    parts = train_parts(ctx.shape, t, layout, dev.on_gpu, method)
    if not dev.on_gpu and n > 1:
        parts = {k: v * n for k, v in parts.items()}
    how, total = layout.describe(dev.on_gpu), need(layout)
    if total <= ctx.budget:
        verdict = ("fits in RAM" if not dev.on_gpu else
                   "fits on 1 GPU" if n == 1 else f"fits: {how}")
        return StagePlan("train", how, min(n, dev.count), round(total / GIB, 1), _gib(parts),
                         True, verdict)
    verdict, advice = _alternative(ctx, layout, need)
    return StagePlan("train", how, min(n, dev.count), round(total / GIB, 1), _gib(parts),
                     False, verdict, advice)


def _alternative(ctx: _Ctx, layout: Layout,
                 need: Callable[[Layout], float]) -> tuple[str, str]:
    """The first change that makes training fit, the least intrusive first: activation
    checkpointing; the full fine-tune sharded over the fewest GPUs; LoRA (on one GPU, then DDP
    over several: config.py allows LoRA only with DDP). Several processes split the batch, so
    only process counts that divide `[train] batch_size` are tried."""
    dev, batch = ctx.devices, ctx.config.train.batch_size
    sharding = "fsdp" if layout.strategy == "ddp" else layout.strategy
    ckpt = [layout.checkpointing] if layout.checkpointing else [False, True]
    sizes = [k for k in range(2, dev.count + 1) if batch % k == 0] if dev.on_gpu else []
    candidates: list[tuple[str, Layout]] = []
    if not layout.checkpointing:
        candidates.append(("activation checkpointing", replace(layout, checkpointing=True)))
    if not layout.lora:
        candidates += [(f"{SHARDED[sharding]} over {k}", replace(
            layout, processes=k, strategy=sharding, checkpointing=c)) for c in ckpt for k in sizes]
    # LoRA's frozen weights may be bf16 without harm (trainer.precision: full fine-tunes
    # need fp32 master weights, so bf16 is offered only with LoRA)
    dtypes = [layout.dtype] + (["bfloat16"] if layout.dtype != "bfloat16" else [])
    for d in dtypes:
        name = "LoRA" + (", bf16 weights" if d != layout.dtype else "")
        if not layout.lora or d != layout.dtype:
            candidates += [(name, Layout(True, layout.processes, "ddp", c, d)) for c in ckpt
                           if layout.processes == 1 or layout.strategy == "ddp"]
        candidates += [(f"{name}, DDP over {k}", Layout(True, k, "ddp", c, d))
                       for c in ckpt for k in sizes]
    for what, lay in candidates:
        if need(lay) <= ctx.budget:
            return f"does not fit; fits with {what} ({need(lay) / GIB:.1f} GiB)", \
                _settings(layout, lay)
    return "does not fit", ("no layout of LoRA, checkpointing and sharding over these "
                            "devices fits: use more or larger GPUs, or a smaller model")


def _settings(now: Layout, then: Layout) -> str:
    """The config change from one layout to another, as a user writes it."""
    out = []
    if then.lora and not now.lora:
        out.append("lora = true")
    if then.checkpointing and not now.checkpointing:
        out.append("activation_checkpointing = true")
    if then.dtype != now.dtype:
        out.append(f'dtype = "{then.dtype}"')
    if (then.processes, then.strategy) != (now.processes, now.strategy):
        out += [f'strategy = "{then.strategy}"', f"processes = {then.processes}"]
    return "set [train] " + ", ".join(out) + (
        f" and submit with --gpus {then.processes}" if then.processes > 1 else "")
