"""Seed SFT data: the bundled set and users' JSONL files of chat examples.

Both papers (CREAM; Self-Rewarding Language Models) fine-tune M0 on human-written examples
before the loop starts; `[sft] data` names them. A seed file has one JSON object per line with
"messages": a list of {"role": "system" | "user" | "assistant", "content": str} turns whose
last is the assistant's reply (the part the SFT loss is computed on). Other keys ("id",
"kind", "answer", ...) are allowed and ignored. Repeated examples are kept: a user who repeats
one means it to weigh more.

`bundled:seed` is ours (scripts/make_seed_set.py writes it): worked arithmetic, multiple
choice ending with the evaluation's "Answer: X" line, and general instructions, none of them
an evaluation item or a bundled prompt.

Light layer: standard library only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cream_engine.config import read_text
from cream_engine.config_stages import BUNDLED_SEED
from cream_engine.errors import DataError
from cream_engine.paths import bundled_data

ROLES = ("system", "user", "assistant")


def seed_path(spec: str) -> Path:
    """The file `spec` names: `bundled:seed` or a path."""
    if spec.startswith("bundled:"):
        if spec != BUNDLED_SEED:
            raise DataError(f"[sft] data = {spec!r}: unknown bundled set (known: "
                            f"{BUNDLED_SEED})")
        return bundled_data("seed.jsonl")
    return Path(spec)


def read_seed_file(spec: str, max_examples: int = 0) -> list[list[dict]]:
    """The examples of a seed file in file order, each a list of {"role", "content"} turns;
    `max_examples` > 0 keeps the first ones. The whole file is checked either way: a
    `DataError` names the file, the line and what is wrong."""
    path = seed_path(spec)
    text = read_text(path, "seed file", DataError)
    examples: list[list[dict]] = []
    # lines end at "\n" (not splitlines(): U+2028 inside a JSON string is not a line break)
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            examples.append(_parse_line(f"{path}:{lineno}", line))
    if not examples:
        raise DataError(f"{path}: no examples in the seed file")
    return examples[:max_examples] if max_examples > 0 else examples


def seed_digest(spec: str) -> str:
    """sha256 of the file's bytes: what a cached M1 was trained on."""
    text = read_text(seed_path(spec), "seed file", DataError)  # (UTF-8: its bytes again)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parse_line(where: str, line: str) -> list[dict]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: invalid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object with \"messages\"")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: expected \"messages\": a non-empty list of "
                        "{\"role\", \"content\"} turns")
    turns = []
    for n, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content"), str):
            raise DataError(f"{where}: message {n}: expected an object with string \"role\" "
                            "and \"content\"")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise DataError(f"{where}: message {n}: unknown role {role!r} (expected "
                            f"{', '.join(ROLES)})")
        if not content.strip():
            raise DataError(f"{where}: message {n} ({role}): empty content")
        turns.append({"role": role, "content": content})
    if turns[-1]["role"] != "assistant":
        raise DataError(f"{where}: the last message is the {turns[-1]['role']}'s; a seed "
                        "example ends with the assistant's reply")
    if not any(t["role"] == "user" for t in turns):
        raise DataError(f"{where}: no user message before the assistant's reply")
    return turns
