"""Prompts: the bundled set and users' JSONL files, and the per-iteration slices cut from them.

A prompt file has one JSON object per line, either `{"prompt": "..."}` or a chat
`{"messages": [{"role": "user", "content": "..."}, ...]}` (a trailing assistant turn, if any, is
dropped: the model writes that part). An optional `"id"` names the prompt; otherwise the line
number does.

Light layer: standard library only.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from cream_engine.config import BUNDLED_PROMPTS, read_text
from cream_engine.errors import DataError
from cream_engine.paths import bundled_data


@dataclass(frozen=True)
class Prompt:
    id: str
    messages: tuple[dict, ...] = field(default=())

    @property
    def text(self) -> str:
        """The last user turn: what the judge is shown as 'the instruction'."""
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        return users[-1] if users else self.messages[-1]["content"]

    def to_json(self) -> dict:
        return {"prompt_id": self.id, "prompt": self.text, "messages": list(self.messages)}


def load_prompts(spec: str) -> list[Prompt]:
    """Load `bundled:prompts` or a user's JSONL file; raise `DataError` naming file and line."""
    path = bundled_data("prompts.jsonl") if spec == BUNDLED_PROMPTS else Path(spec)
    if spec.startswith("bundled:") and spec != BUNDLED_PROMPTS:
        raise DataError(f"[data] prompts = {spec!r}: unknown bundled set (known: "
                        f"{BUNDLED_PROMPTS})")
    text = read_text(path, "prompt file", DataError)
    prompts: list[Prompt] = []
    seen: set[str] = set()
    # lines end at "\n" (not splitlines(): U+2028 inside a JSON string is not a line break)
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        prompt = _parse_line(path, lineno, line)
        if prompt.id in seen:
            raise DataError(f"{path}:{lineno}: duplicate prompt id {prompt.id!r}")
        seen.add(prompt.id)
        prompts.append(prompt)
    if not prompts:
        raise DataError(f"{path}: no prompts in the file")
    return prompts


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
        return Prompt(pid, ({"role": "user", "content": obj["prompt"]},))
    messages = obj.get("messages")
    if isinstance(messages, list) and messages:
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                   and isinstance(m.get("content"), str) for m in messages):
            raise DataError(f"{where}: each message needs a string 'role' and 'content'")
        if messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        if messages and any(m["role"] == "user" for m in messages):
            return Prompt(pid, tuple({"role": m["role"], "content": m["content"]}
                                     for m in messages))
    raise DataError(f"{where}: expected a non-empty \"prompt\" string or \"messages\" "
                    "with a user turn")


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
