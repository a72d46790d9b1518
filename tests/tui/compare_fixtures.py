"""A store of three evaluated runs for the compare screen and `cream compare`, written with the
real Store and, like the evaluate stage, with each model's per-item files under
iter-<t>/eval/ (iter-0/baseline/ for M0), so the intervals of means have a spread to go on.

- srlm-x (done, 3 iterations) and cream-y (done, 3 iterations): on `mc` (n = 200) cream-y's
  final model is better beyond noise (0.62 vs 0.48); on `arith` (n = 12) srlm-x falls from
  2/12 to 1/12 while cream-y ends at 2/12, a difference within noise;
- scir-z (running, iteration 1 of 3): M0 and M1 evaluated, τ of one iteration (one point);
- every DPO loss starts flat at ln 2 (± 1e-7, as a policy equal to its reference does) for
  eight steps, then falls.
Everything is computed, nothing random, so screenshots are the same on every machine.
"""

from __future__ import annotations

import math
from pathlib import Path

from cream_engine.config import from_dict, to_toml
from cream_engine.files import write_json, write_jsonl
from cream_engine.store import open_store

SRLM, CREAM, SCIR = ("20260101-100000-srlm-x-1a01", "20260101-110000-cream-y-1b02",
                     "20260101-120000-scir-z-1c03")
HELD = 16          # held-out prompts: the judge's score, lengths, the win rate
STEPS = 40         # logged DPO steps per iteration


def _config(name: str, method: str, beta: float) -> str:
    return to_toml(from_dict({
        "run": {"name": name, "method": method, "model": "bundled:smollm2-135m-instruct",
                "iterations": 3},
        "data": {"prompts_per_iteration": 64}, "train": {"beta": beta},
        "eval": {"win_rate_prompts": HELD}}))


def _evaluation(k: int, mc: int, arith: int, score: float, length: float,
                win: int | None) -> dict:
    """M_k's evaluation as the engine writes it: mc right of 200, arith right of 12."""
    ev: dict = {"model": f"M{k}", "sets": {
        "mc": {"n": 200, "gen_acc": mc / 200, "gen_unparsable": 9, "ll_acc": (mc + 6) / 200,
               "ll_acc_norm": (mc + 8) / 200, "ll_acc_bytes": (mc + 7) / 200},
        "arith": {"n": 12, "gen_acc": arith / 12, "gen_unparsable": 3}},
        "judge_score": score, "mean_length": length, "seconds_by_part": {"generative": 9.5}}
    if win is not None:
        ev["win"] = {"vs": f"M{k - 1}", "n": HELD, "win_rate": win / HELD,
                     "tie_rate": (HELD - win - 2) / HELD, "loss_rate": 2 / HELD,
                     "p_new": 0.5 + win / 64}
    return ev


def _details(folder: Path, ev: dict) -> None:
    """The per-item files of one evaluation, consistent with its means."""
    folder.mkdir(parents=True, exist_ok=True)
    score, length = ev["judge_score"], ev["mean_length"]
    # scores and lengths spread symmetrically about the mean, so the means are exact
    offsets = [((i % 8) - 3.5) / 3.5 for i in range(HELD)]
    write_jsonl(folder / "judge.jsonl", [{"prompt_id": f"p{i}", "score": score + 0.9 * o}
                                         for i, o in enumerate(offsets)])
    write_jsonl(folder / "heldout.jsonl",
                [{"prompt_id": f"p{i}", "reply": "x" * round(4 * (length + 30 * o))}
                 for i, o in enumerate(offsets)])
    if "win" in ev:
        p = ev["win"]["p_new"]
        write_jsonl(folder / "win.jsonl", [
            {"prompt_id": f"p{i}", "p_new_first": p + 0.2 * o, "p_new_second": p + 0.1 * o,
             "outcome": "tie"} for i, o in enumerate(offsets)])


def _loss(store, run_id: str, t: int, seed: float) -> None:
    for step in range(1, STEPS + 1):
        if step <= 8:   # the policy still equals its reference: ln 2 and numerical noise
            loss = math.log(2) + 1e-7 * math.sin(step + seed)
        else:
            loss = 0.693 * math.exp(-(step - 8) / (25 + 5 * seed)) + 0.03 * math.sin(step)
        store.log_metrics(run_id, t, "train", step, {"loss": loss}, at=1000.0 + step)


def write_compare_store(home: Path) -> list[str]:
    """Fill `home` with the three runs; returns their ids (srlm-x, cream-y, scir-z)."""
    home = home.absolute()
    store = open_store(home)
    runs = {SRLM: ("srlm-x", "srlm", 0.1, "done",
                   [(96, 2, 2.10, 180.0), (92, 2, 2.21, 196.0), (98, 2, 2.25, 214.0),
                    (96, 1, 2.30, 231.0)], [None, -0.08, -0.15]),
            CREAM: ("cream-y", "cream", 0.1, "done",
                    [(96, 2, 2.10, 180.0), (108, 1, 2.48, 178.0), (117, 2, 2.69, 181.0),
                     (124, 2, 2.92, 183.0)], [None, 0.62, 0.84]),
            SCIR: ("scir-z", "scir", 0.3, "running",
                   [(96, 2, 2.10, 180.0), (104, 2, 2.37, 185.0)], [None, 0.41])}
    for run_id, (name, method, beta, status, evals, taus) in runs.items():
        run_dir = home / run_id
        store.create_run(run_id, name=name, method=method,
                         model="bundled:smollm2-135m-instruct", iterations=3,
                         run_dir=str(run_dir), config_toml=_config(name, method, beta))
        store.set_run_status(run_id, status)
        wins = [None, 9, 8, 7] if method != "srlm" else [None, 6, 4, 3]
        for k, (mc, arith, score, length) in enumerate(evals):
            ev = _evaluation(k, mc, arith, score, length, wins[k])
            folder = run_dir / "iter-0" / "baseline" if k == 0 else \
                run_dir / f"iter-{k - 1}" / "eval"
            _details(folder, ev)
            write_json(folder.parent / ("baseline.json" if k == 0 else "eval.json"), ev)
        for t, tau in enumerate(taus):
            done = t + 1 < len(evals)
            summary = {"evaluate": _evaluation(t + 1, *evals[t + 1], wins[t + 1])} \
                if done else {}
            if t == 0:
                summary["baseline"] = _evaluation(0, *evals[0], None)
            store.upsert_iteration(run_id, t, status="done" if done else "running",
                                   n_pairs=40 + t, mean_tau=tau, summary=summary,
                                   mean_consistency=None if tau is None else (tau + 1) / 2,
                                   agreement=0.6 + 0.05 * t)
            _loss(store, run_id, t, seed=len(name) + t + (0 if method == "cream" else 2))
    store.close()
    return [SRLM, CREAM, SCIR]
