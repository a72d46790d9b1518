"""How a worker behaves: its options, with the command line of `python -m cream_engine.worker`
built from them and read back (the CLI's `cream worker start|run` and the daemon use both).

Light layer: standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from cream_engine import paths
from cream_engine.daemon import STALE_S


@dataclass
class WorkerOptions:
    """How a worker behaves; the CLI's defaults are these."""

    home: Path
    notify: str | None = None          # shell command; gets each alert as JSON on stdin
    poll_s: float = 1.0
    grace_s: float = 10.0              # SIGTERM → SIGKILL
    stall_minutes: float = 30.0
    stale_s: float = STALE_S           # a worker heartbeat older than this is dead
    max_utilization: float = 50.0      # a GPU busier than this (%) is not free
    gpu_retention_s: float = 24 * 3600.0
    max_jobs: int = 0                  # 0: as many as the GPUs (and CPU slots) allow
    cpu_slots: int = 1                 # CPU jobs at once; each gets cores / cpu_slots threads
    once: bool = False                 # exit when the queue is empty and nothing runs (tests)

    def to_args(self) -> list[str]:
        """The command line of `python -m cream_engine.worker` for these options."""
        args = ["--home", str(self.home)]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "home" or value == f.default:
                continue
            flag = "--" + f.name.removesuffix("_s").replace("_", "-")
            if isinstance(value, bool):
                args.append(flag)
            else:
                args += [flag, str(value)]
        return args

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        ap = argparse.ArgumentParser(prog="python -m cream_engine.worker")
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.removesuffix("_s").replace("_", "-")
            if f.name == "home":
                ap.add_argument(flag, default=None)
            elif isinstance(f.default, bool):
                ap.add_argument(flag, dest=f.name, action="store_true")
            else:
                kind = type(f.default) if f.default is not None else str
                ap.add_argument(flag, dest=f.name, type=kind, default=f.default)
        return ap

    @classmethod
    def from_args(cls, argv: list[str] | None) -> WorkerOptions:
        values = vars(cls.parser().parse_args(argv))
        values["home"] = paths.data_home(values["home"])
        values["cpu_slots"] = max(1, values["cpu_slots"])
        return cls(**values)
