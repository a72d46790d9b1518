"""Iteration files for the drill-down tests: the fixture run cream-a (tests/tui/fixtures.py,
method cream, N = 4) gets responses, scores, consistency and pairs for its three iterations,
in the stages' formats and through the stages' own functions (the implicit rewards, τ_j and
C_j of stages/consistency.py; best vs worst and CREAM's pair weight of methods/), from
computed log-probabilities: nothing random, so screenshots are the same on every machine.

Prompt "p03" (in every iteration) has four identical responses: its rewards tie, no pair.
"p05" has an empty response, "p07" long ones that must wrap.
"""

from __future__ import annotations

import math
from pathlib import Path

from cream_engine import paths
from cream_engine.files import write_jsonl
from cream_engine.methods import get_method
from cream_engine.methods.base import best_and_worst
from cream_engine.stages.consistency import implicit_rewards, per_prompt
from tests.tui.fixtures import RUNS

N = 4
PROMPTS = [
    ("p00", "Explain why the sky is blue in two sentences."),
    ("p01", "Write a haiku about a lighthouse in winter."),
    ("p02", "What is 17 times 23? Show your working."),
    ("p03", "Say hello."),
    ("p04", "Give three tips for a first marathon."),
    ("p05", "Translate 'good morning' into French and Spanish."),
    ("p06", "Summarise the plot of Hamlet in one paragraph."),
    ("p07", "Describe how a bicycle gear system works, for a curious ten-year-old."),
    ("p08", "List the planets of the solar system in order."),
    ("p09", "Why do onions make people cry?"),
]
PER_ITERATION = 8   # prompts per iteration: p00-p07, then p03-p09 + p00, then p06-p09 + p00-p03
WORDS = ["the", "answer", "is", "that", "light", "scatters", "off", "small", "molecules", "more",
         "at", "short", "wavelengths", "so", "blue", "reaches", "the", "eye", "from", "every",
         "part", "of", "the", "sky"]


def _prompts(t: int) -> list[tuple[str, str]]:
    start = (3 * t) % len(PROMPTS)
    return [PROMPTS[(start + k) % len(PROMPTS)] for k in range(PER_ITERATION)]


def _response(t: int, j: int, pid: str, i: int) -> str:
    if pid == "p03":
        return "Hello! How can I help you today?"
    if pid == "p05" and i == 2:
        return ""
    length = 6 + (7 * i + 3 * j + t) % 11 + (60 if pid == "p07" else 0)
    return " ".join(WORDS[(i + k * (j + 2)) % len(WORDS)] for k in range(length)).capitalize() \
        + "."


def _logp(t: int, j: int, i: int, k: int, tokens: int) -> float:
    """log π_k(y_i|x_j): a smooth function of the model k, so rankings drift across models."""
    quality = 2.0 * math.sin(1.7 * i + 0.9 * j)           # what every model sees
    drift = 1.5 * math.sin(2.3 * i * (k + 1) + j + 0.5 * t)  # what each model sees its way
    return round(-1.3 * tokens + k * (quality + drift) + 0.1 * quality, 4)


def write_iteration_files(home: Path, run_id: str = RUNS.done, iterations: int = 3) -> None:
    """responses.jsonl, scores.jsonl, consistency.jsonl and pairs.jsonl of each iteration."""
    method = get_method("cream")
    run_dir = home.absolute() / run_id
    for t in range(iterations):
        folder = paths.iter_dir(run_dir, t)
        responses, scores, rows = [], [], []
        for j, (pid, text) in enumerate(_prompts(t)):
            messages = [{"role": "user", "content": text}]
            outs = [_response(t, j, pid, i) for i in range(N)]
            responses.append({"prompt_id": pid, "prompt": text, "messages": messages,
                              "responses": outs})
            tokens = [max(len(y.split()) + 2, 1) for y in outs]
            same = pid == "p03"   # identical responses: identical log-probabilities
            logp = {role: [_logp(t, j, 0 if same else i, k, tokens[i]) for i in range(N)]
                    for role, k in (("current", t), ("reference", 0), ("previous", t - 1))
                    if k >= 0 and not (role == "reference" and t == 0)}
            scores.append({"prompt_id": pid, "tokens": tokens, "prompt_tokens": [12] * N,
                           "dtype": "float32", "logp": logp})
            current, previous = implicit_rewards(scores[-1], t)
            tau, c = per_prompt(current, previous)
            rows.append({"prompt_id": pid, "rewards": {"implicit": current,
                                                       "previous_implicit": previous},
                         "tau": tau, "consistency": c})
        defined = [r["consistency"] for r in rows if r["consistency"] is not None]
        c_mean = sum(defined) / len(defined) if defined else None
        pairs = []
        for rec, resp in zip(rows, responses):
            picked = best_and_worst(rec["rewards"]["implicit"])
            if picked is None:
                continue
            i, k = picked
            primary = rec["rewards"]["implicit"]
            pairs.append({
                "prompt_id": rec["prompt_id"], "prompt": resp["prompt"],
                "messages": resp["messages"], "chosen": resp["responses"][i],
                "rejected": resp["responses"][k], "chosen_index": i, "rejected_index": k,
                "weight": method.pair_weight(rec["consistency"], c_mean, "average"),
                "rewards": [primary[i], primary[k]],
                "other_rewards": {name: [v[i], v[k]] for name, v in rec["rewards"].items()
                                  if name != "implicit" and v is not None},
                "tau": rec["tau"], "consistency": rec["consistency"], "labeled": True})
        write_jsonl(folder / paths.ARTIFACTS["generate"], responses)
        write_jsonl(folder / paths.ARTIFACTS["score"], scores)
        write_jsonl(folder / paths.ARTIFACTS["consistency"], rows)
        write_jsonl(folder / paths.ARTIFACTS["pairs"], pairs)
