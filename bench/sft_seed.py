"""The seed SFT on SmolLM2-135M-Instruct with the bundled seed set: M0 against M1 on both
bundled evaluation sets, each number with its n and 95% interval.

    python bench/sft_seed.py [--home DIR] [--items 40] [--epochs 5] [--lr 5e-6]

Runs the engine's own first stages of a run (M0's evaluation, the seed SFT, M1's evaluation)
through `pipeline.run_stage`, so the numbers are what a run records; prints a table and one
JSON line. The share of unparsable answers is the first thing SFT on replies that end with
"Answer: X" should move; accuracy on 135M parameters moves little.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="data home (default: a temp folder)")
    parser.add_argument("--items", type=int, default=40, help="items per evaluation set")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=5e-6)
    parser.add_argument("--max-examples", type=int, default=0)
    args = parser.parse_args()

    from cream_engine import pipeline
    from cream_engine.config import from_dict
    from cream_engine.context import RunContext
    from cream_engine.results import evaluations_by_model
    from cream_engine.runs import create_run
    from cream_engine.stats import proportion_interval
    from cream_engine.store import open_store

    home = Path(args.home or tempfile.mkdtemp(prefix="cream-sft-bench-"))
    config = from_dict({
        "run": {"name": "sft-bench", "method": "cream", "iterations": 1},
        "sft": {"enabled": True, "epochs": args.epochs, "learning_rate": args.lr,
                "max_examples": args.max_examples},
        "eval": {"max_items": args.items, "win_rate_prompts": 0},
    })
    store = open_store(home)
    run_dir = home / create_run(store, home, config, status="running")
    ctx = RunContext.open(run_dir, store)
    seconds = {}
    for name, fn in pipeline.stages_of(ctx, 0)[:3]:  # baseline, sft, sft-eval
        started = time.time()
        pipeline.run_stage(ctx, 0, name, fn)
        seconds[name] = round(time.time() - started, 1)

    evals = evaluations_by_model(store, run_dir.name)
    rows = []
    print(f"{'model':5} {'set':6} {'metric':15} {'value':>6}  {'n':>3}  95% interval")
    for k in (0, 1):
        for set_name, info in evals[k]["sets"].items():
            n = info["n"]
            for metric in ("gen_acc", "gen_unparsable", "ll_acc", "ll_acc_norm",
                           "ll_acc_bytes"):
                if metric not in info:
                    continue
                share = info[metric] / n if metric == "gen_unparsable" else info[metric]
                low, high = proportion_interval(round(share * n), n)
                rows.append({"model": f"M{k}", "set": set_name, "metric": metric,
                             "value": round(share, 3), "n": n,
                             "interval": [round(low, 3), round(high, 3)]})
                print(f"M{k:<4} {set_name:6} {metric:15} {share:6.3f}  {n:3d}  "
                      f"{low:.3f}-{high:.3f}")
    sft_info = json.loads(next(s["info"] for s in store.stages(run_dir.name)
                               if s["stage"] == "sft"))
    print(json.dumps({"bench": "sft_seed", "seconds": seconds, "sft": {
        k: sft_info.get(k) for k in ("examples", "steps", "epochs", "final_loss",
                                     "seconds_per_step")}, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
