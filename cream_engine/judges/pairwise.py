"""LLM-as-a-Judge, pairwise probability (SCIR's generative reward model).

The model sees the request and two responses, A and B, and is asked which is better, answering
with one letter. P_G is read from the next-token probabilities of the verdict tokens right
after the assistant turn opens, normalised over {A, B}, and averaged over both presentation
orders to cancel position bias (ALGORITHMS.md):

    P_G(y1 ≻ y2) = ½ [p(A | y1 first) + p(B | y2 first)],   p(A) = σ(logit_A − logit_B)

Swapping y1 and y2 swaps the two orders and each p(·) for its complement, so
P_G(y2 ≻ y1) = 1 − P_G(y1 ≻ y2) holds by construction.

The same functions serve the training step (with gradients, `trainer.py`) and the
no-grad agreement measurement (`stages/train.py`). Heavy layer: torch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from cream_engine.errors import PairwiseJudgeError

VERDICTS = ("A", "B")

PAIRWISE = """Compare two replies by an assistant to the same user request.

[Request]
{instruction}

[Reply A]
{first}

[Reply B]
{second}

Which reply serves the request better: more relevant, correct, complete and helpful? \
Judge the content, not the order in which the replies appear or their length. \
Answer with a single letter, A or B."""


def pairwise_messages(instruction: str, first: str, second: str) -> list[dict]:
    """The chat messages that ask which of `first` (A) and `second` (B) is better."""
    return [{"role": "user", "content": PAIRWISE.format(
        instruction=instruction.strip(), first=first.strip(), second=second.strip())}]


def request_text(pair: dict) -> str:
    """The request a pair answers: its `prompt`, else the last user message."""
    if pair.get("prompt"):
        return str(pair["prompt"])
    users = [m["content"] for m in pair.get("messages", []) if m.get("role") == "user"]
    return str(users[-1]) if users else ""


def _template_ids(tokenizer: Any, messages: list[dict]) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    return list(ids if isinstance(ids, list) else ids["input_ids"])


def verdict_tokens(tokenizer: Any) -> tuple[int, int]:
    """Token ids of the verdicts "A" and "B" as the next token after the assistant turn opens.

    A template that ends in a newline is followed by a bare "A"; one that ends in a word
    ("Assistant:") by " A", which BPE tokenizers fold into one token. Each form is checked in
    context: appending it to a rendered judge prompt must add exactly one token."""
    text = tokenizer.apply_chat_template(pairwise_messages("Say hi.", "Hi.", "Hello."),
                                         tokenize=False, add_generation_prompt=True)
    base = tokenizer(text, add_special_tokens=False)["input_ids"]
    for forms in (VERDICTS, tuple(" " + v for v in VERDICTS)):
        ids = []
        for form in forms:
            full = tokenizer(text + form, add_special_tokens=False)["input_ids"]
            if full[:len(base)] == base and len(full) == len(base) + 1:
                ids.append(full[-1])
        if len(ids) == 2 and ids[0] != ids[1]:
            return ids[0], ids[1]
    raise PairwiseJudgeError("the pairwise judge's verdicts 'A' and 'B' are not single tokens "
                             "after this tokenizer's assistant turn (method scir needs them)")


def judge_max_length(max_length: int) -> int:
    """Tokens of a judge prompt at most, from `[train] max_length` (prompt + one response): it
    holds the request and two responses, so twice that."""
    return 2 * max_length


def encode_judge_prompt(tokenizer: Any, instruction: str, first: str, second: str,
                        max_length: int) -> list[int]:
    """Token ids of the judge prompt (chat template, assistant turn opened).

    Too long: both replies are cut to the same number of tokens (so the two presentation
    orders see the same texts); a request that alone is too long keeps its end, where the
    question and the verdict position are."""
    ids = _template_ids(tokenizer, pairwise_messages(instruction, first, second))
    if len(ids) <= max_length:
        return ids
    overhead = len(_template_ids(tokenizer, pairwise_messages(instruction, "", "")))
    budget = max(1, (max_length - overhead) // 2)

    def cut(text: str) -> str:
        return tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][:budget])

    ids = _template_ids(tokenizer, pairwise_messages(instruction, cut(first), cut(second)))
    return ids[-max_length:]


def judge_columns(tokenizer: Any, instruction: str, y1: str, y2: str,
                  max_length: int) -> dict[str, list[int]]:
    """Both presentation orders of one pair: y1 as A (`judge_12_ids`), y2 as A (`judge_21_ids`)."""
    return {"judge_12_ids": encode_judge_prompt(tokenizer, instruction, y1, y2, max_length),
            "judge_21_ids": encode_judge_prompt(tokenizer, instruction, y2, y1, max_length)}


def collate_judge(sequences: list[list[int]], pad_token_id: int) -> dict[str, Any]:
    """Right-padded ids, attention mask, and the index of each sequence's last token (the
    verdict is read from the logits there). Right padding leaves the real tokens' positions
    and attention exactly as without padding."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, :len(seq)] = 1
    last = torch.tensor([len(s) - 1 for s in sequences], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "last": last}


def verdict_logits(model: Any, input_ids: Any, attention_mask: Any, last: Any,
                   verdict_ids: tuple[int, int]) -> Any:
    """(N, 2) float32 logits of ("A", "B") at each sequence's last position. Differentiable:
    called inside the training step it carries gradients into the policy."""
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    try:
        # only the last positions go through the LM head (not the (N, L, vocab) logits)
        keep, column = _kept(last)
        logits = model(**kwargs, logits_to_keep=keep).logits[_rows(last), column]
    except TypeError:  # a model without `logits_to_keep`
        full = model(**kwargs).logits
        logits = full[torch.arange(full.size(0), device=full.device), last]
    return logits[:, list(verdict_ids)].float()


def verdict_logits_both_orders(model: Any, input_ids: Any, attention_mask: Any, last: Any,
                               verdict_ids: tuple[int, int]) -> Any:
    """`verdict_logits` of a judge batch laid out as `collate_judge` makes it for a training
    step: the B prompts with y1 first, then the B with y2 first. The two orders of a pair read
    the same tokens up to the first reply (chat template, instructions, the request), so that
    common prefix goes through the model once, with the first order, and the second order
    continues from its keys and values: the same numbers (a causal model's states at a
    position depend on the tokens before it only) for ~12% fewer judge tokens on SmolLM2.

    Falls back to one plain forward of the 2B rows where a model cannot continue from a
    cache: activation checkpointing (it turns the cache off), caches other than plain
    dynamic layers (sliding windows), no common prefix."""
    n = input_ids.size(0) // 2
    lengths = last + 1
    cols = torch.arange(input_ids.size(1), device=input_ids.device)
    # the first column where a pair's orders differ, leaving each order at least its last token
    shortest = torch.minimum(lengths[:n], lengths[n:])
    differ = (input_ids[:n] != input_ids[n:]) | (cols >= (shortest - 1)[:, None])
    shared = differ.int().argmax(dim=1)
    width = int(shared.max()) if n else 0
    if width == 0 or _checkpointing(model):
        return verdict_logits(model, input_ids, attention_mask, last, verdict_ids)
    # 1. the first order in full; its cache holds every pair's common prefix
    w12 = int(lengths[:n].max())
    keep, column = _kept(last[:n])
    try:
        first = model(input_ids=input_ids[:n, :w12], attention_mask=attention_mask[:n, :w12],
                      use_cache=True, logits_to_keep=keep)
    except TypeError:  # a model without `logits_to_keep`
        return verdict_logits(model, input_ids, attention_mask, last, verdict_ids)
    ids = list(verdict_ids)
    first_logits = first.logits[_rows(column), column][:, ids].float()
    cache = getattr(first, "cache", None)
    if cache is None:  # (transformers before 5.2x)
        cache = getattr(first, "past_key_values", None)
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers) \
            or cache.get_seq_length() < width:  # no cache to continue from: the second alone
        return torch.cat([first_logits, verdict_logits(model, input_ids[n:],
                                                       attention_mask[n:], last[n:],
                                                       verdict_ids)], dim=0)
    for layer in layers:  # keep columns [0, width): each row's prefix, then (masked) its own
        layer.keys, layer.values = layer.keys[..., :width, :], layer.values[..., :width, :]
    # 2. the second order from its first own token on, after the prefix (right-padded)
    rest = lengths[n:] - shared
    steps = torch.arange(int(rest.max()), device=cols.device)
    tail_mask = (steps < rest[:, None]).long()
    tail_ids = input_ids[n:].gather(1, (shared[:, None] + steps).clamp(max=cols.numel() - 1))
    prefix_mask = (cols[:width] < shared[:, None]).long()  # (a row's own columns: masked)
    keep, column = _kept(rest - 1)
    second = model(input_ids=tail_ids * tail_mask,
                   attention_mask=torch.cat([prefix_mask, tail_mask], dim=1),
                   position_ids=shared[:, None] + steps, use_cache=True,
                   logits_to_keep=keep, **{_cache_keyword(model): cache})
    second_logits = second.logits[_rows(column), column][:, ids].float()
    return torch.cat([first_logits, second_logits], dim=0)


def _kept(last: Any) -> tuple[Any, Any]:
    """(`logits_to_keep`: the distinct last positions of the rows, as a 1-D tensor, each row's
    column among them). Only those positions go through the LM head (not the (N, L, vocab)
    logits, nor every position from the shortest row's end on). A 1-D tensor means "these
    positions of every row" in every transformers version; a per-row (N, 1) tensor does not
    (5.19's Llama mis-indexes it)."""
    keep, column = torch.unique(last, sorted=True, return_inverse=True)
    return keep, column


def _rows(index: Any) -> Any:
    return torch.arange(index.numel(), device=index.device)


def _unwrapped(model: Any) -> Any:
    """The transformers model inside DDP/FSDP (`.module`) and PEFT (`get_base_model`)."""
    while hasattr(model, "module"):
        model = model.module
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _checkpointing(model: Any) -> bool:
    inner = _unwrapped(model)
    flag = getattr(inner, "is_activation_checkpointing", None)  # (transformers 5.2x's name)
    return bool(getattr(inner, "is_gradient_checkpointing", False) if flag is None else flag)


def _cache_keyword(model: Any) -> str:
    """`cache` (transformers 5.2x) or `past_key_values` (before): what forward calls it."""
    params = inspect.signature(_unwrapped(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def pairwise_probability(logits_12: Any, logits_21: Any) -> Any:
    """P_G(y1 ≻ y2) per pair from the verdict logits of both orders, each (B, 2) as (A, B):
    ½[p(A | y1 first) + p(B | y2 first)], each p normalised over {A, B}."""
    p_a_y1_first = torch.sigmoid(logits_12[:, 0] - logits_12[:, 1])
    p_b_y2_first = torch.sigmoid(logits_21[:, 1] - logits_21[:, 0])
    return 0.5 * (p_a_y1_first + p_b_y2_first)


def judge_probabilities(model: Any, tokenizer: Any, pairs: list[tuple[str, str, str]], *,
                        verdict_ids: tuple[int, int], max_length: int, batch_size: int = 8,
                        device: str = "cpu", progress: Callable[[int], None] | None = None
                        ) -> list[float]:
    """P_G(y1 ≻ y2) for every (request, y1, y2), no gradients, in input order."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[float] = []
    model.eval()
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        cols = [judge_columns(tokenizer, x, y1, y2, max_length) for x, y1, y2 in chunk]
        batch = collate_judge([c["judge_12_ids"] for c in cols]
                              + [c["judge_21_ids"] for c in cols], pad)
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.no_grad():
            logits = verdict_logits_both_orders(model, batch["input_ids"],
                                                batch["attention_mask"], batch["last"],
                                                verdict_ids)
        out.extend(pairwise_probability(*logits.chunk(2, dim=0)).tolist())
        if progress:
            progress(len(chunk))
    return out
