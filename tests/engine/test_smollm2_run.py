"""A real run on the converted SmolLM2-135M-Instruct (slow: minutes on 2 CPU cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cream_engine.files import read_jsonl
from cream_engine.store import open_store
from tests.engine.helpers import engine, finish, new_run


@pytest.mark.slow
@pytest.mark.parametrize("method", ["cream", "srlm"])
def test_two_iterations_on_smollm2(method: str, smollm2_dir: Path, tmp_path: Path) -> None:
    config = {"run": {"name": f"real-{method}", "method": method, "model": str(smollm2_dir),
                      "iterations": 2},
              "data": {"prompts_per_iteration": 4},
              "generate": {"n": 3, "max_new_tokens": 24},
              "judge": {"samples": 1, "max_new_tokens": 0},
              "eval": {"max_items": 6, "max_new_tokens": 48, "win_rate_prompts": 4}}
    run_dir = new_run(tmp_path / "home", config)
    code, err = finish(engine(run_dir), timeout=900)
    assert code == 0, err[-3000:]
    store = open_store(tmp_path / "home")
    iters = store.iterations(run_dir.name)
    assert [i["status"] for i in iters] == ["done", "done"]
    assert iters[1]["mean_tau"] is not None
    responses = read_jsonl(run_dir / "iter-0" / "responses.jsonl")
    words = " ".join(r for row in responses for r in row["responses"]).split()
    assert len(words) > 20  # a real model writes words, not an empty string
    if method == "srlm":
        rewards = read_jsonl(run_dir / "iter-0" / "consistency.jsonl")
        scores = [s for r in rewards for s in r["rewards"]["judge"]]
        assert all(0 <= s <= 5 for s in scores)
        assert iters[0]["agreement"] is not None
    # every model evaluated: a real model writes real replies, and the scores are in range
    evals = [json.loads((run_dir / "iter-0" / "baseline.json").read_text())] + \
        [json.loads((run_dir / f"iter-{t}" / "eval.json").read_text()) for t in (0, 1)]
    assert [e["model"] for e in evals] == ["M0", "M1", "M2"]
    for e in evals:
        assert e["mean_length"] > 5 and 0 <= e["judge_score"] <= 5
        for name in ("mc", "arith"):
            s = e["sets"][name]
            assert s["n"] == 6 and 0 <= s["gen_acc"] <= 1 and 0 <= s["gen_unparsable"] <= 6
        assert 0 <= e["sets"]["mc"]["ll_acc"] <= 1
    replies = read_jsonl(run_dir / "iter-0" / "baseline" / "mc.generative.jsonl")
    assert sum(len(r["reply"].split()) for r in replies) > 30
    assert all(e["win"]["n"] == 4 for e in evals[1:])
