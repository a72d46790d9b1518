"""`cream plan CONFIG`: the memory each stage needs per GPU and what fits, before anything is
queued. The estimates and their formulas live in `cream_engine.plan` and `cream_engine.memory`;
this prints them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cream_engine.config import load_config
from cream_engine.errors import NoGpuError, UsageError
from cream_engine.gpu import read_gpus
from cream_engine.plan import Devices, Plan, cpu_devices, gpu_devices, make_plan, parse_gpus
from cream_tui.cli.common import ConfigArg, JsonOpt, SetOpt, echo_json, info

GpusOpt = Annotated[str | None, typer.Option(
    "--gpus", metavar="NxMEM", show_default=False,
    help="Plan for N GPUs of MEM GB each (as nvidia-smi counts them: 80 for an 80 GB card), "
         "e.g. 8x80 [default: this machine's GPUs; with none, the CPU and its RAM].")]


def plan(config: ConfigArg, gpus: GpusOpt = None, set_: SetOpt = None,
         as_json: JsonOpt = False) -> None:
    """Estimate each stage's memory per GPU and say what fits, before anything is queued.

    Reads the config and the model's config.json only (a local folder, a bundled model, or a
    Hugging Face id in the local cache): nothing is loaded, prompts are not measured. Per stage
    (generate, score, train, evaluate) it prints the memory per GPU, what it is made of and a
    verdict: fits on 1 GPU, fits with FSDP over N, or does not fit and the first change that
    would (activation checkpointing, FSDP over N GPUs, LoRA). The plan assumes the job gets all
    the GPUs given (submit it with --gpus N). The worker refuses a job that cannot fit the same
    way.

    Exit codes: 0 every stage fits, 3 one cannot (the reason on stderr), 2 a bad config or
    --gpus."""
    cfg = load_config(config, set_)
    devices = parse_gpus(gpus) if gpus is not None else _this_machine()
    result = make_plan(cfg, devices)
    if as_json:
        echo_json(result.to_json())
    else:
        print_plan(result)
    if not result.fits:
        raise NoGpuError(result.reason or "does not fit")


def _this_machine() -> Devices:
    report = read_gpus()
    if not report.gpus:
        info(f"{report.reason}: the run would be on the CPU; planning its RAM "
             "(use --gpus NxMEM to plan for GPUs)")
        return cpu_devices()
    totals = [g.memory_total_mb for g in report.gpus]
    if any(t is None for t in totals):
        raise UsageError("a GPU's memory cannot be read: give the GPUs with --gpus NxMEM")
    return gpu_devices([t for t in totals if t is not None])


def print_plan(p: Plan, console: Console | None = None) -> None:
    """The model, the devices, one row per stage, what each number is made of, a summary."""
    console = console or Console()
    m, dev = p.model, p.devices
    console.print(Text(f"model {m.name}: {_count(m.parameters)} parameters ({m.describe()})"))
    room = "GiB per GPU" if dev.on_gpu else "GiB of RAM"
    source = f" ({dev.source})" if dev.on_gpu else ""
    console.print(Text(f"on {dev.describe()}{source}: {dev.usable_gib:.1f} {room} usable"))
    table = Table(box=None, header_style="bold")
    for col, justify in (("stage", "left"), ("runs as", "left"),
                         ("GiB/GPU" if dev.on_gpu else "GiB RAM", "right"),
                         ("verdict", "left")):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for s in p.stages:
        style = "green" if s.fits else "red"
        table.add_row(s.stage, Text(s.how), f"{s.need_gib:.1f}" if s.parts else "-",
                      Text(s.verdict, style=style))
    console.print(table)
    for s in p.stages:
        if s.parts:
            made = " + ".join(f"{k} {v:.1f}" for k, v in s.parts.items() if v >= 0.05)
            console.print(Text(f"  {s.stage}: {made}"), style="dim")
        if s.advice:
            console.print(Text(f"  {s.stage}: {s.advice}"))
    console.print(Text(p.summary()), style="bold")


def _count(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"
