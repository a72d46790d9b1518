"""Evaluation sets: loaders for the public layouts, numbers, and the prompts and contexts an
item is asked with (answers.py reads a reply's answer).

A set is a JSON-lines file (`.jsonl`, or `.json` holding JSON lines or one JSON array) or a
Parquet file, in one of the Hugging Face layouts below; the first record's keys say which.

- ARC (HF):          {"question": str, "choices": {"text": [...], "label": [...]}, "answerKey"}
- ARC (AI2 jsonl):   {"question": {"stem": str, "choices": [{"text", "label"}, ...]}, "answerKey"}
- OpenBookQA (HF):   {"question_stem": str, "choices": {"text": [...], "label": [...]}, "answerKey"}
- SIQA (HF):         {"context", "question", "answerA", "answerB", "answerC", "label": "1".."3"}
- GSM8K:             {"question": str, "answer": "reasoning ...\\n#### 42"}

ARC labels may be letters or digits and ARC has 3 to 5 options: `answerKey` is matched against
the file's labels, and the gold answer kept as an index. Prompts always show letters A, B, ...
An optional "id" names an item; otherwise `<set>-<n>` does.

`bundled:mc` and `bundled:arith` are small sets we wrote (scripts/make_eval_sets.py), in the ARC
and GSM8K layouts, whose answers are computed by code.

Light layer: standard library only (pyarrow is imported only to read Parquet).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from cream_engine.config import read_text
from cream_engine.errors import DataError
from cream_engine.paths import bundled_data

BUNDLED_EVAL_SETS: dict[str, str] = {"bundled:mc": "eval/mc.jsonl",
                                     "bundled:arith": "eval/arith.jsonl"}
LAYOUTS = "ARC, OpenBookQA, SIQA (Hugging Face layouts) or GSM8K"


@dataclass(frozen=True)
class EvalItem:
    id: str
    question: str
    choices: tuple[str, ...] = ()
    gold: int | str = 0  # mc: index into choices; number: a normalised decimal string

    @property
    def kind(self) -> str:
        """"mc" (choose an option) or "number" (a short numeric answer)."""
        return "mc" if self.choices else "number"

    @property
    def letters(self) -> tuple[str, ...]:
        """The letters shown for the options, whatever labels the file used."""
        return tuple(string.ascii_uppercase[:len(self.choices)])


@dataclass(frozen=True)
class EvalSet:
    name: str
    source: str
    format: str  # "arc" | "openbookqa" | "siqa" | "gsm8k"
    items: tuple[EvalItem, ...]

    @property
    def kind(self) -> str:
        """The kind of its items (a set holds one kind)."""
        return self.items[0].kind if self.items else "mc"


# -- loading --------------------------------------------------------------------------------


def _unknown_bundled(spec: str) -> DataError:
    return DataError(f"[data] eval_sets: {spec}: unknown bundled set (known: "
                     f"{', '.join(BUNDLED_EVAL_SETS)})")


def load_eval_set(spec: str, limit: int = 0) -> EvalSet:
    """Load a bundled set or a user's file; `limit` > 0 keeps the first items in file order."""
    if spec.startswith("bundled:"):
        if spec not in BUNDLED_EVAL_SETS:
            raise _unknown_bundled(spec)
        path, name = bundled_data(BUNDLED_EVAL_SETS[spec]), spec.split(":", 1)[1]
    else:
        path = Path(spec)
        name = path.stem
    items: list[EvalItem] = []
    seen: set[str] = set()
    layout = None
    for where, record in _records(path):
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object")
        layout = layout or _detect(where, record)
        item = _PARSERS[layout](where, record, f"{name}-{len(items) + 1}")
        if item.id in seen:
            raise DataError(f"{where}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
        if 0 < limit <= len(items):
            break
    if not items:
        raise DataError(f"{path}: no items in the file")
    return EvalSet(name=name, source=spec, format=layout, items=tuple(items))


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) per record: "file:line" for JSON lines, "file: row n" otherwise."""
    if path.suffix.lower() == ".parquet":
        yield from _parquet_records(path)
        return
    if path.suffix.lower() not in (".jsonl", ".json"):
        raise DataError(f"{path}: unsupported file type (expected .jsonl, .json or .parquet)")
    text = read_text(path, "evaluation file", DataError)
    if text.lstrip().startswith("["):  # a .json file holding one array
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
        yield from ((f"{path}: item {n}", row) for n, row in enumerate(rows, start=1))
        return
    # lines end at "\n" only: a U+2028 inside a JSON string is not a line break
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{lineno}", json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None


def _parquet_records(path: Path) -> Iterator[tuple[str, Any]]:
    if not path.is_file():
        raise DataError(f"{path}: no such evaluation file")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError, ValueError) as e:  # a damaged or foreign file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataError(f"{path}: not a readable Parquet file ({first})") from None
    yield from ((f"{path}: row {n}", row) for n, row in enumerate(rows, start=1))


def _detect(where: str, record: dict) -> str:
    """The layout, from the first record's keys."""
    question = record.get("question")
    if "question_stem" in record and "choices" in record:
        return "openbookqa"
    if "answerA" in record and "context" in record:
        return "siqa"
    if "answerKey" in record and (isinstance(question, dict) or "choices" in record):
        return "arc"
    if isinstance(question, str) and "answer" in record:
        return "gsm8k"
    keys = ", ".join(sorted(map(str, record))) or "none"
    raise DataError(f"{where}: unknown layout (keys: {keys}); known: {LAYOUTS}")


def _text(where: str, record: dict, key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: expected a non-empty string {key!r}")
    return value.strip()


def _item_id(record: dict, default: str) -> str:
    return str(record["id"]) if record.get("id") not in (None, "") else default


def _multiple_choice(where: str, record: dict, default_id: str, question: str,
                     texts: Any, labels: Any) -> EvalItem:
    """Options and the answerKey's index among the file's labels."""
    if (not isinstance(texts, list) or not isinstance(labels, list)
            or not all(isinstance(t, str) for t in texts) or len(texts) != len(labels)):
        raise DataError(f"{where}: expected choices with as many 'text' strings as 'label's")
    if not 2 <= len(texts) <= 26:
        raise DataError(f"{where}: expected 2 to 26 choices, found {len(texts)}")
    labels = [str(label).strip() for label in labels]
    if len(set(labels)) != len(labels):
        raise DataError(f"{where}: repeated choice labels {', '.join(labels)}")
    key = str(record.get("answerKey", "")).strip()
    if key not in labels:
        raise DataError(f"{where}: answerKey {key!r} is not one of the labels "
                        f"{', '.join(labels)}")
    return EvalItem(_item_id(record, default_id), question,
                    tuple(t.strip() for t in texts), labels.index(key))


def _arc(where: str, record: dict, default_id: str) -> EvalItem:
    q = record.get("question")
    if isinstance(q, dict):  # AI2's original layout: question {stem, choices: [{text, label}]}
        choices = q.get("choices")
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            raise DataError(f"{where}: expected question.choices as a list of "
                            "{\"text\", \"label\"} objects")
        return _multiple_choice(where, record, default_id, _text(where, q, "stem"),
                                [c.get("text") for c in choices],
                                [c.get("label") for c in choices])
    return _hf_choices(where, record, default_id, "question")


def _openbookqa(where: str, record: dict, default_id: str) -> EvalItem:
    return _hf_choices(where, record, default_id, "question_stem")


def _hf_choices(where: str, record: dict, default_id: str, question_key: str) -> EvalItem:
    """The Hugging Face layout: the question under `question_key`, choices {text, label}."""
    choices = record.get("choices")
    if not isinstance(choices, dict):
        raise DataError(f"{where}: expected 'choices' as {{\"text\": [...], \"label\": [...]}}")
    return _multiple_choice(where, record, default_id, _text(where, record, question_key),
                            choices.get("text"), choices.get("label"))


def _siqa(where: str, record: dict, default_id: str) -> EvalItem:
    question = _text(where, record, "context") + " " + _text(where, record, "question")
    choices = tuple(_text(where, record, k) for k in ("answerA", "answerB", "answerC"))
    label = str(record.get("label", "")).strip()
    if label not in ("1", "2", "3"):
        raise DataError(f"{where}: label {label!r} is not one of 1, 2, 3")
    return EvalItem(_item_id(record, default_id), question, choices, int(label) - 1)


def _gsm8k(where: str, record: dict, default_id: str) -> EvalItem:
    question = _text(where, record, "question")
    gold = gsm8k_answer(_text(where, record, "answer"))
    if gold is None:
        raise DataError(f"{where}: answer has no final '#### <number>'")
    return EvalItem(_item_id(record, default_id), question, (), gold)


_PARSERS = {"arc": _arc, "openbookqa": _openbookqa, "siqa": _siqa, "gsm8k": _gsm8k}


# -- numbers --------------------------------------------------------------------------------

# An optional sign and "$", then 1,234,567 (groups of three) or 1234, with optional decimals,
# or .5; not inside a word or another number.
NUMBER = re.compile(r"(?<![\w.,])([-+\u2212]?)\$?((?:\d{1,3}(?:,\d{3}(?!\d))+|\d+)(?:\.\d*)?"
                    r"|\.\d+)")


def parse_number(text: str) -> str | None:
    """The first number written in `text`, as a normalised decimal string ("1,234.50" ->
    "1234.5", "-0" -> "0"); None if there is none."""
    match = NUMBER.search(text)
    return number_value(match) if match else None


def number_value(match: re.Match) -> str:
    """A match of NUMBER as a normalised decimal string."""
    value = Decimal(match.group(2).replace(",", ""))
    if match.group(1) in ("-", "\u2212"):
        value = -value
    return "0" if value == 0 else format(value.normalize(), "f")


def gsm8k_answer(answer: str) -> str | None:
    """The number after the last "####" of a GSM8K answer."""
    _, marker, final = answer.rpartition("####")
    return parse_number(final) if marker else None


def numbers_equal(a: str | None, b: str | None) -> bool:
    """Numeric equality of two number strings; False if either is missing or not a number."""
    if a is None or b is None:
        return False
    try:
        return Decimal(a) == Decimal(b)
    except InvalidOperation:
        return False


# -- prompts --------------------------------------------------------------------------------


def mc_prompt(item: EvalItem) -> str:
    """The question, lettered options, and the instruction to end with "Answer: X"."""
    options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(item.letters,
                                                                       item.choices))
    return (f"{item.question}\n\n{options}\n\nThink step by step, then end your reply with a "
            "final line of the form \"Answer: X\", where X is the letter of the correct option.")


def number_prompt(item: EvalItem) -> str:
    """The question and the instruction to end with "Answer: N"."""
    return (f"{item.question}\n\nThink step by step, then end your reply with a final line of "
            "the form \"Answer: N\", where N is the final number.")


def prompt_for(item: EvalItem) -> str:
    """The generative prompt for an item of either kind."""
    return mc_prompt(item) if item.kind == "mc" else number_prompt(item)


# lm-evaluation-harness's `doc_to_text` per task; each option is then scored as the
# continuation " " + option (its default target_delimiter). SIQA's item question is already
# "{context} {question}". A format without a harness task of its own takes ARC's.
LOGLIK_TEMPLATES: dict[str, str] = {"arc": "Question: {question}\nAnswer:",
                                    "openbookqa": "{question}",
                                    "siqa": "Q: {question}\nA:"}


def loglik_context(item: EvalItem, fmt: str) -> str:
    """The context an item's options are scored after, as lm-evaluation-harness writes it
    for the set's format: ARC "Question: …\nAnswer:", OpenBookQA the question stem alone,
    SIQA "Q: {context} {question}\nA:"."""
    template = LOGLIK_TEMPLATES.get(fmt, LOGLIK_TEMPLATES["arc"])
    return template.format(question=item.question)
