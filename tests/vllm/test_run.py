"""A real 1-iteration `cream run` with `[generate] backend = "vllm"` on SmolLM2-135M: the
generate stage, the judge's next-token log-probs and evaluation's greedy answers all through
vLLM engine processes; training in between loads the model with transformers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm


def test_one_iteration_with_the_vllm_backend(smollm2_dir: Path, tmp_path: Path,
                                             engine_memory: float) -> None:
    config = tmp_path / "vllm-run.toml"
    config.write_text(f"""
[run]
name = "vllm-run"
method = "srlm"
model = "{smollm2_dir}"
iterations = 1
seed = 1

[data]
prompts_per_iteration = 4

[generate]
backend = "vllm"
n = 2
max_new_tokens = 24
gpu_memory_utilization = {engine_memory}

[judge]
samples = 1
max_new_tokens = 0

[train]
batch_size = 2

[eval]
max_items = 4
max_new_tokens = 24
win_rate_prompts = 2
""")
    home = tmp_path / "home"
    cream = Path(sys.executable).parent / "cream"
    start = time.monotonic()
    done = subprocess.run([str(cream), "run", str(config), "--home", str(home)],
                          check=False, capture_output=True, text=True, timeout=1500,
                          stdin=subprocess.DEVNULL)
    took = time.monotonic() - start
    stages = [line for line in done.stderr.splitlines() if line.startswith("iter ")]
    print(f"\n1-iteration vllm run: exit {done.returncode} in {took:.0f} s\n"
          + "\n".join(stages))
    assert done.returncode == 0, done.stderr[-4000:]

    from cream_engine.files import read_jsonl
    from cream_engine.store import open_store

    store = open_store(home)
    (run,) = store.list_runs()
    run_dir = store.run_path(run)
    info = {(s["iteration"], s["stage"]): json.loads(s["info"] or "{}")
            for s in store.stages(run["id"])}
    assert info[(0, "generate")]["backend"] == "vllm"
    assert [i["status"] for i in store.iterations(run["id"])] == ["done"]
    responses = read_jsonl(run_dir / "iter-0" / "responses.jsonl")
    assert len(responses) == 4 and all(len(r["responses"]) == 2 for r in responses)
    assert len(" ".join(x for r in responses for x in r["responses"]).split()) > 20
    # the judge's expected scores came from vLLM's next-token log-probs: in range, not NaN
    judged = read_jsonl(run_dir / "iter-0" / "consistency.jsonl")
    scores = [s for r in judged for s in r["rewards"]["judge"]]
    assert scores and all(0 <= s <= 5 for s in scores)
    evaluation = json.loads((run_dir / "iter-0" / "eval.json").read_text())
    assert evaluation["mean_length"] > 3
