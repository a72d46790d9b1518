"""Prompts: the bundled set and users' JSONL files, and the per-iteration slices cut from them.

A prompt file has one JSON object per line, either `{"prompt": "..."}` or a chat
`{"messages": [{"role": "user", "content": "..."}, ...]}` (a trailing assistant turn, if any, is
dropped: the model writes that part). An optional `"id"` names the prompt; otherwise the line
number does. A prompt that repeats an earlier one (the same turns) is left out and counted, so
one copy can never be trained on while the other serves as a held-out prompt.

Prompts must fit the model: `limit_length` applies `[data] long_prompts` to their token counts
(measured by `tokens.py` at validate/submit and again by the engine with the model's own
tokenizer), so nothing downstream allocates in proportion to a user's text.

Light layer: standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from cream_engine.config import BUNDLED_PROMPTS, ExperimentConfig, read_text
from cream_engine.errors import ConfigError, DataError
from cream_engine.paths import bundled_data


@dataclass(frozen=True)
class Prompt:
    id: str
    messages: tuple[dict, ...] = field(default=())
    line: int = field(default=0, compare=False)  # where it is in its file (for messages)

    @property
    def text(self) -> str:
        """The last user turn: what the judge is shown as 'the instruction'."""
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        return users[-1] if users else self.messages[-1]["content"]

    def to_json(self) -> dict:
        return {"prompt_id": self.id, "prompt": self.text, "messages": list(self.messages)}


@dataclass(frozen=True)
class PromptFile:
    """The prompts of one file, in file order, and what was left out of it."""

    path: Path
    prompts: list[Prompt]
    duplicates: int = 0      # lines repeating an earlier prompt
    too_long: int = 0        # prompts skipped by `[data] long_prompts = "skip"`

    def summary(self) -> str:
        """'120 prompts (3 duplicates left out)' for validate, submit and the job log."""
        notes = [f"{n} {what} left out" for n, what in (
            (self.duplicates, "duplicate" if self.duplicates == 1 else "duplicates"),
            (self.too_long, "too long")) if n]
        return f"{len(self.prompts)} prompts" + (f" ({', '.join(notes)})" if notes else "")


def prompt_path(spec: str) -> Path:
    if spec.startswith("bundled:") and spec != BUNDLED_PROMPTS:
        raise DataError(f"[data] prompts = {spec!r}: unknown bundled set (known: "
                        f"{BUNDLED_PROMPTS})")
    return bundled_data("prompts.jsonl") if spec == BUNDLED_PROMPTS else Path(spec)


def read_prompt_file(spec: str) -> PromptFile:
    """Load `bundled:prompts` or a user's JSONL file; raise `DataError` naming file and line."""
    path = prompt_path(spec)
    text = read_text(path, "prompt file", DataError)
    prompts: list[Prompt] = []
    ids: set[str] = set()
    turns: set[tuple] = set()
    duplicates = 0
    # lines end at "\n" (not splitlines(): U+2028 inside a JSON string is not a line break)
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        prompt = _parse_line(path, lineno, line)
        if prompt.id in ids:
            raise DataError(f"{path}:{lineno}: duplicate prompt id {prompt.id!r}")
        ids.add(prompt.id)
        key = tuple((m["role"], m["content"].strip()) for m in prompt.messages)
        if key in turns:
            duplicates += 1
            continue
        turns.add(key)
        prompts.append(prompt)
    if not prompts:
        raise DataError(f"{path}: no prompts in the file")
    return PromptFile(path, prompts, duplicates)


def load_prompts(spec: str) -> list[Prompt]:
    """The distinct prompts of a file, in file order."""
    return read_prompt_file(spec).prompts


def limit_length(prompts: PromptFile, tokens: list[int], room: int, policy: str,
                 why: str) -> PromptFile:
    """Apply `[data] long_prompts`: a prompt of more than `room` tokens is refused (a
    `DataError` naming file, line and count: the first of them, and how many there are) or,
    with policy "skip", left out and counted. `tokens[i]` is the templated length of
    `prompts.prompts[i]`; `why` says where `room` comes from."""
    if len(tokens) != len(prompts.prompts):
        raise ValueError("one token count per prompt")
    long = [(p, n) for p, n in zip(prompts.prompts, tokens) if n > room]
    if not long:
        return prompts
    if policy == "refuse":
        first, n = long[0]
        more = f"; {len(long) - 1} more prompts are too long" if len(long) > 1 else ""
        raise DataError(f"{prompts.path}:{first.line}: prompt is {n} tokens, at most {room} "
                        f"fit ({why}){more} (shorten it, or set [data] long_prompts = "
                        '"skip")')
    kept = [p for p, n in zip(prompts.prompts, tokens) if n <= room]
    if not kept:
        raise DataError(f"{prompts.path}: every prompt is longer than {room} tokens ({why})")
    return dataclasses.replace(prompts, prompts=kept, too_long=len(long))


def _parse_line(path: Path, lineno: int, line: str) -> Prompt:
    where = f"{path}:{lineno}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: invalid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object")
    pid = str(obj.get("id", obj.get("prompt_id", f"line-{lineno}")))
    if isinstance(obj.get("prompt"), str) and obj["prompt"].strip():
        return Prompt(pid, ({"role": "user", "content": obj["prompt"]},), lineno)
    messages = obj.get("messages")
    if isinstance(messages, list) and messages:
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                   and isinstance(m.get("content"), str) for m in messages):
            raise DataError(f"{where}: each message needs a string 'role' and 'content'")
        if messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        if messages and any(m["role"] == "user" for m in messages):
            return Prompt(pid, tuple({"role": m["role"], "content": m["content"]}
                                     for m in messages), lineno)
    raise DataError(f"{where}: expected a non-empty \"prompt\" string or \"messages\" "
                    "with a user turn")


def prompt_room(config: ExperimentConfig, context: int | None) -> tuple[int, str]:
    """(tokens a prompt may have, where that number comes from): the response must fit after
    it, within the model's context and within `[train] max_length`, where the pair is
    trained."""
    new = config.generate.max_new_tokens
    limit, what = config.train.max_length, f"[train] max_length {config.train.max_length}"
    if context is not None and context < limit:
        limit, what = context, f"the model's context {context}"
    if limit - new < 1:
        raise ConfigError(f"[generate] max_new_tokens = {new}: leaves no room for a prompt "
                          f"within {what}")
    return limit - new, f"{what} - [generate] max_new_tokens {new}"


def prompt_slices(prompts: list[Prompt], iterations: int, per_iteration: int,
                  seed: int) -> list[list[Prompt]]:
    """Disjoint per-iteration slices, drawn by a seeded shuffle (same seed -> same slices)."""
    needed = iterations * per_iteration
    if len(prompts) < needed:
        raise DataError(f"[data] prompts: {len(prompts)} prompts cannot fill {iterations} "
                        f"iterations x {per_iteration} prompts ({needed} needed)")
    order = _seeded_order(prompts, seed)
    return [order[t * per_iteration:(t + 1) * per_iteration] for t in range(iterations)]


def held_out_prompts(prompts: list[Prompt], iterations: int, per_iteration: int, seed: int,
                     k: int) -> list[Prompt]:
    """Up to `k` prompts that no iteration trains on: the ones after the slices in the same
    seeded order, so they never overlap any slice."""
    return _seeded_order(prompts, seed)[iterations * per_iteration:][:k]


def _seeded_order(prompts: list[Prompt], seed: int) -> list[Prompt]:
    """The one order slices and held-out prompts are both cut from."""
    order = list(prompts)
    random.Random(seed).shuffle(order)
    return order
