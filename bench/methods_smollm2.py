"""Run methods side by side on the bundled SmolLM2-135M-Instruct and print, per method:
wall time per stage and iteration, and per iteration the pair count, mean Kendall τ, mean C,
judge-implicit agreement, seconds per training step and (SCIR) the agreement of its two reward
models before and after training.

    .venv/bin/python bench/methods_smollm2.py [--methods cream srlm] [--prompts 16] [--n 4]
        [--iterations 2] [--max-new-tokens 96] [--judge-samples 3]
        [--judge-max-new-tokens 96] [--home DIR]

Defaults are the engine issue's check: 2 iterations of 16 prompts x 4 responses, on CPU.
With --home pointing at a home that already has these runs, it only prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cream_engine import paths
from cream_engine.config import from_dict, to_toml
from cream_engine.store import open_store

STAGES = tuple(s for s in paths.STAGES if s != "evaluate")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["cream", "srlm"])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--judge-samples", type=int, default=3,
                    help="[judge] samples (judgments per response)")
    ap.add_argument("--judge-max-new-tokens", type=int, default=96,
                    help="[judge] max_new_tokens (0: score directly, no justification)")
    ap.add_argument("--model", default="bundled:smollm2-135m-instruct")
    ap.add_argument("--home", type=Path, default=None)
    args = ap.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="cream-bench-"))
    runs = {}
    for method in args.methods:
        config = from_dict({
            "run": {"name": f"bench-{method}", "method": method, "model": args.model,
                    "iterations": args.iterations},
            "data": {"prompts_per_iteration": args.prompts},
            "generate": {"n": args.n, "max_new_tokens": args.max_new_tokens},
            "judge": {"samples": args.judge_samples,
                      "max_new_tokens": args.judge_max_new_tokens},
            "eval": {"enabled": False}})  # evaluation has its own bench: eval_smollm2.py
        path = home / f"bench-{method}.toml"
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(to_toml(config))
        started = time.time()
        proc = subprocess.run([sys.executable, "-m", "cream_tui.cli", "--home", str(home),
                               "run", str(path)], stdout=subprocess.PIPE, text=True)
        runs[method] = (proc.stdout.strip().splitlines()[-1], time.time() - started,
                        proc.returncode)
    store = open_store(home)
    print(f"home: {home}")
    print(f"{'method':<7} {'t':>2} " + " ".join(f"{s:>11}" for s in STAGES)
          + f" {'pairs':>5} {'mean τ':>7} {'mean C':>7} {'agree':>6} {'len':>6}"
          + f" {'s/step':>6} {'agr<':>5} {'agr>':>5}")
    for method, (run_id, wall, code) in runs.items():
        stages = {(s["iteration"], s["stage"]): s for s in store.stages(run_id)}
        for it in store.iterations(run_id):
            t = it["iteration"]
            cells = []
            for s in STAGES:
                row = stages.get((t, s))
                secs = (row["ended_at"] - row["started_at"]) if row and row["ended_at"] else None
                cells.append(f"{secs:>10.1f}s" if secs is not None else f"{'-':>11}")

            def f(v: float | None, fmt: str = "{:>7.3f}") -> str:
                return fmt.format(v) if v is not None else f"{'-':>7}"
            train = stages.get((t, "train"))
            info = json.loads(train["info"]) if train and train["info"] else {}
            print(f"{method:<7} {t:>2} " + " ".join(cells) + f" {it['n_pairs'] or 0:>5} "
                  f"{f(it['mean_tau'])} {f(it['mean_consistency'])} "
                  f"{f(it['agreement'], '{:>6.2f}')} {f(it['mean_response_length'], '{:>6.1f}')} "
                  f"{f(info.get('seconds_per_step'), '{:>6.2f}')} "
                  f"{f(info.get('scir_agreement_before'), '{:>5.2f}')} "
                  f"{f(info.get('scir_agreement_after'), '{:>5.2f}')}")
        print(f"{method:<7} total {wall:.0f}s, exit {code}, run {run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
