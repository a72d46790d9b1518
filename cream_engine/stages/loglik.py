"""Multiple choice scored by option log-likelihood, as lm-evaluation-harness scores ARC,
OpenBookQA and SIQA (its `multiple_choice` output type, no chat template, zero-shot).

Per item, each option's log-likelihood LL_i = Σ log p(" " + option_i | context), the context
written as the harness's task writes it for the set (evalsets.loglik_context). Then, following
the harness's `process_results` for multiple choice (lm_eval/api/task.py):
- `ll_acc`       (harness `acc`):       argmax_i LL_i
- `ll_acc_norm`  (harness `acc_norm`):  argmax_i LL_i / len(option_i), in characters
- `ll_acc_bytes` (harness `acc_bytes`): argmax_i LL_i / len(option_i.encode("utf-8"))
The lengths are the option's own, without the " " scored before it. A tie goes to the first
option (numpy's argmax). Each is the share of items whose pick is the gold option.

Heavy layer (the model scores through logprobs.py).
"""

from __future__ import annotations

from typing import Any

from cream_engine.evalsets import EvalItem, EvalSet, loglik_context
from cream_engine.logprobs import encoded_logprobs

MAX_TOKENS = 1024  # context + option, cut from the left (the option always stays whole)


def option_logliks(parts: Any, model: Any, tokenizer: Any, s: EvalSet) -> list[dict]:
    """Σ log p of each option as the continuation of the item's context, per item
    (`parts`: the evaluation's progress, evaluate.Parts)."""
    encoded, owners = [], []
    for n, item in enumerate(s.items):
        context = tokenizer(loglik_context(item, s.format))["input_ids"]
        for choice in item.choices:
            cont = tokenizer(" " + choice, add_special_tokens=False)["input_ids"]
            cont = cont[:MAX_TOKENS - 1]
            ids = (context + cont)[-MAX_TOKENS:]
            encoded.append((ids, len(ids) - len(cont)))
            owners.append(n)
    with parts.bar(len(encoded), f"eval {s.name} ll") as bar:
        scored = encoded_logprobs(model, tokenizer, encoded,
                                  batch_size=parts.ctx.config.eval.batch_size,
                                  device=parts.ctx.device, progress=bar.advance)
    rows = [{"id": item.id, "logp": []} for item in s.items]
    for n, lp in zip(owners, scored):
        rows[n]["logp"].append(lp.logp)
    return rows


def picks(logp: list[float], choices: tuple[str, ...]) -> dict[str, int]:
    """The option each rule picks from the options' log-likelihoods."""
    chars = [lp / max(1, len(c)) for lp, c in zip(logp, choices)]
    utf8 = [lp / max(1, len(c.encode("utf-8"))) for lp, c in zip(logp, choices)]
    return {"ll_acc": _argmax(logp), "ll_acc_norm": _argmax(chars),
            "ll_acc_bytes": _argmax(utf8)}


def score_loglik(items: tuple[EvalItem, ...], rows: list[dict]) -> dict:
    """ll_acc, ll_acc_norm and ll_acc_bytes: the share of items each rule picks right."""
    right = {"ll_acc": 0, "ll_acc_norm": 0, "ll_acc_bytes": 0}
    for item, row in zip(items, rows):
        for rule, pick in picks(row["logp"], item.choices).items():
            right[rule] += pick == item.gold
    n = len(items)
    return {rule: count / n if n else None for rule, count in right.items()}


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))
