"""One rank of multi-process training: `python -m cream_engine.train_rank SPEC.json`.

Started by `launch.run_ranks` with torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR…), or
by srun across a Slurm job's nodes (the same variables from Slurm's, `launch.rank_from_slurm`);
Trainer/accelerate set up the process group from it (gloo on the CPU, NCCL on GPUs). Every rank
loads M_t and the pairs from files (an in-memory `datasets.Dataset` breaks across ranks), runs
the same trainer (from the checkpoint the engine chose to resume from, if any), and joins in
saving; rank 0 alone prints the events the engine records
(JSON lines: metrics, progress, summary) and writes the checkpoint. A rank that fails writes
its one-line error to `<work_dir>/rank-<r>.error` and exits 1.

Heavy layer: torch, transformers, trl (through stages/train.py).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from cream_engine.config import ScirConfig, TrainConfig
from cream_engine.errors import CreamError
from cream_engine.launch import die_with_parent, rank_from_slurm


def _emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    die_with_parent()
    rank_from_slurm()
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    rank = int(os.environ.get("RANK", "0"))
    work_dir = Path(spec["work_dir"])
    try:
        from cream_engine.stages.train import train_ranked

        lead = rank == 0
        summary = train_ranked(
            policy_path=spec["policy_path"], rows_file=Path(spec["rows_file"]),
            out_dir=Path(spec["out_dir"]), train=TrainConfig(**spec["train"]),
            seed=spec["seed"], device=spec["device"], work_dir=work_dir,
            scir=ScirConfig(**spec["scir"]) if spec.get("scir") else None,
            resume=Path(spec["resume"]) if spec.get("resume") else None,
            on_metrics=(lambda step, values: _emit({"metrics": [step, values]})) if lead
            else (lambda step, values: None),
            on_progress=(lambda step, total: _emit({"progress": [step, total]})) if lead
            else None)
        if lead:
            _emit({"summary": summary})
        return 0
    except BaseException as e:  # every failure leaves its line for the engine
        line = e.line if isinstance(e, CreamError) else f"{type(e).__name__}: {e}"
        if isinstance(e, SystemExit) and not e.code:
            raise
        try:
            (work_dir / f"rank-{rank}.error").write_text(line.splitlines()[0] if line else
                                                         type(e).__name__, encoding="utf-8")
        except OSError:
            pass
        traceback.print_exc()  # to the job log
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
