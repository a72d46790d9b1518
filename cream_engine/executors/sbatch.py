"""What one Slurm submission asks (`SlurmOptions`: the user config's [slurm] defaults, then
the flags of `cream submit`) and the batch script of a run.

The script runs `python -m cream_engine run RUN_DIR` in the background under two traps:
- USR1 (`--signal=B:USR1@<s>`, only the batch shell gets it, <s> seconds before the time
  limit): stop the engine gracefully (SIGTERM: it keeps what is finished, a train stage its last
  checkpoint), then `scontrol requeue` this job so that it goes on;
- TERM (scancel, preemption): passed on to the engine, which stops the same way; Slurm
  requeues a preempted job itself (`--requeue`).
Not USR1 for both: a cancel must not requeue.

Light layer: standard library only.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cream_engine import paths
from cream_engine.userconfig import slurm_defaults


@dataclass(frozen=True)
class SlurmOptions:
    """What one submission asks of Slurm: the user config's [slurm] defaults, then the flags."""

    partition: str | None = None
    gres: str | None = None
    nodes: int | None = None
    time: str | None = None
    account: str | None = None
    qos: str | None = None
    sbatch: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    python: str = field(default_factory=lambda: sys.executable)
    signal_seconds: int = 120

    @classmethod
    def from_user(cls, **flags: Any) -> SlurmOptions:
        """Defaults from the user config, then every flag given (None = not given)."""
        merged = slurm_defaults()
        merged.pop("poll_seconds", None)
        setup = merged.get("setup", ())
        merged["setup"] = (setup,) if isinstance(setup, str) else tuple(setup)
        merged["sbatch"] = tuple(merged.get("sbatch", ())) + tuple(flags.pop("sbatch", ()) or ())
        merged.update({k: v for k, v in flags.items() if v is not None})
        return cls(**merged)

    def resources(self) -> list[str]:
        """The sbatch options of the resources asked (what --test-only checks)."""
        out = [f"--{k}={v}" for k, v in (("partition", self.partition), ("gres", self.gres),
                                         ("nodes", self.nodes), ("time", self.time),
                                         ("account", self.account), ("qos", self.qos))
               if v is not None]
        if (self.nodes or 1) > 1 and not any(a.startswith("--ntasks") for a in self.sbatch):
            # a task per GPU on every node: the training ranks srun starts across them
            out.append(f"--ntasks-per-node={max(self.gpus(), 1)}")
        return out + list(self.sbatch)

    def gpus(self) -> int:
        """GPUs per node asked with --gres gpu[:type]:N (0 without)."""
        for part in (self.gres or "").split(","):
            bits = part.split(":")
            if bits[0] == "gpu":
                return int(bits[-1]) if len(bits) > 1 and bits[-1].isdigit() else 1
        return 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SlurmOptions:
        data = json.loads(text)
        return cls(**{**data, "sbatch": tuple(data["sbatch"]), "setup": tuple(data["setup"])})


# -- the batch script --------------------------------------------------------------------------


def batch_script(run_dir: Path, home: Path, name: str, opts: SlurmOptions) -> str:
    """The script of one run: resources as #SBATCH lines, then the engine under a trap that
    turns Slurm's warning before the time limit into a graceful stop and a requeue."""
    log = paths.job_log(run_dir)
    head = ["#!/bin/bash", f"#SBATCH --job-name={_sbatch_value('cream-' + name)}",
            f"#SBATCH --output={_sbatch_value(str(log))}", "#SBATCH --open-mode=append",
            f"#SBATCH --chdir={_sbatch_value(str(run_dir))}", "#SBATCH --requeue",
            f"#SBATCH --signal=B:USR1@{opts.signal_seconds}"]
    head += [f"#SBATCH {_sbatch_value(a)}" for a in opts.resources()]
    engine = " ".join(shlex.quote(a) for a in
                      (opts.python, "-m", "cream_engine", "run", str(run_dir)))
    body = [
        "# written by `cream submit --executor slurm`: the engine resumes a run from its last",
        "# finished stage (and a train stage from its last checkpoint), so a requeue or a",
        "# preemption loses little; cancel with `cream queue cancel`",
        *opts.setup,
        f"export CREAM_HOME={shlex.quote(str(home))} PYTHONUNBUFFERED=1",
        ('echo "== slurm job ${SLURM_JOB_ID} restart ${SLURM_RESTART_COUNT:-0} on $(hostname)'
         ' at $(date \'+%Y-%m-%d %H:%M:%S\') =="'),
        f"{engine} &",
        "engine=$!",
        "requeue=0",
        "# the time limit is near (--signal): stop the engine (it keeps what is finished),",
        "# then put this job back in the queue to go on",
        ("trap 'requeue=1; echo \"== time limit near: stopping to requeue ==\"; "
         "kill -TERM $engine 2>/dev/null' USR1"),
        "trap 'kill -TERM $engine 2>/dev/null' TERM",
        "while true; do wait $engine; code=$?; kill -0 $engine 2>/dev/null || break; done",
        'if [ $requeue = 1 ]; then scontrol requeue "$SLURM_JOB_ID"; fi',
        "exit $code",
    ]
    return "\n".join(head + body) + "\n"


def _sbatch_value(text: str) -> str:
    """#SBATCH lines are split on white space unless quoted."""
    return f'"{text}"' if any(c.isspace() for c in text) else text


