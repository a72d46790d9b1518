"""What evaluating one model costs: the `baseline` evaluation of the bundled
SmolLM2-135M-Instruct (M0), run in this process, with the wall time of each part and its rate.

    .venv/bin/python bench/eval_smollm2.py [--items 12] [--max-new-tokens 128]
        [--held-out 8] [--threads N] [--model SPEC] [--home DIR]

Defaults are the demo's evaluation. Prints one row per part (generative answers, held-out
replies, option log-likelihoods, judge scores) and the results.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cream_engine.config import from_dict


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=12, help="[eval] max_items per set")
    ap.add_argument("--max-new-tokens", type=int, default=128,
                    help="[eval] max_new_tokens per generated answer")
    ap.add_argument("--held-out", type=int, default=8, help="[eval] win_rate_prompts")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--model", default="bundled:smollm2-135m-instruct")
    ap.add_argument("--home", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from cream_engine.context import RunContext
    from cream_engine.runs import create_run
    from cream_engine.stages import evaluate
    from cream_engine.store import open_store

    if args.threads:
        torch.set_num_threads(args.threads)
    home = args.home or Path(tempfile.mkdtemp(prefix="cream-bench-eval-"))
    store = open_store(home)
    config = from_dict({"run": {"name": "bench-eval", "model": args.model, "iterations": 1},
                        "eval": {"max_items": args.items, "max_new_tokens": args.max_new_tokens,
                                 "win_rate_prompts": args.held_out}})
    run_id = create_run(store, home, config)
    ctx = RunContext.open(Path(store.get_run(run_id)["run_dir"]), store)
    ctx.model_path(0)  # convert the bundled model first: not part of the measurement
    started = time.time()
    info = evaluate.baseline(ctx, 0)
    total = time.time() - started
    n_sets = {name: s["n"] for name, s in info["sets"].items()}
    units = {"generative": sum(n_sets.values()), "held-out replies": args.held_out,
             "loglik": 4 * n_sets.get("mc", 0), "judge score": args.held_out}
    print(f"\nevaluation of M0 ({args.model}), {torch.get_num_threads()} torch threads, "
          f"{args.items} items per set, {args.max_new_tokens} new tokens at most")
    print(f"{'part':<18}{'seconds':>9}{'items':>7}{'items/s':>9}")
    for part, seconds in info["seconds_by_part"].items():
        n = units.get(part, 0)
        rate = f"{n / seconds:.2f}" if seconds and n else "-"
        print(f"{part:<18}{seconds:>9.1f}{n:>7}{rate:>9}")
    print(f"{'total':<18}{total:>9.1f}")
    print(json.dumps({k: v for k, v in info.items() if k != "seconds_by_part"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
