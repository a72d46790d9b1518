"""Reading a reply's final answer, as the CREAM paper scores generative evaluation: the letter
or number the model wrote after its last "Answer:".

The rules, in order:
1. Markers are "Answer:" (any case, markdown around it: "**Answer:**", "Final Answer**:") and
   "answer is" ("The answer is C", "the correct answer is: D"). The LAST marker in the reply
   decides, whichever kind it is: "Answer: The answer is C" reads C, and "answer is" counts
   even when an "Answer:" came earlier. One exception keeps prose from hiding an answer: an
   "answer is" followed by no letter/number an item could take ("This answer is correct") is
   not a marker.
2. The value is the first line after the marker with something besides markdown on it.
3. A number (GSM8K-style items): the first number on that line, with commas, decimals, a sign
   or "$" ("$1,234.00" -> "1234"); but when that number opens an expression with "=", the
   expression's result, the number after its last "=": "2448 + 136 = 3724" reads 3724.
4. A letter (multiple choice): the whole line is an option's text; else a letter opens the line
   ("B", "(b)", "B) Paris", "**B**"); else a standalone capital that is one of the item's
   letters ("the correct option is D"); else exactly one option's text appears in the line.
5. Nothing readable: None (unparsable, scored wrong and counted).

Standard library only (the light layer's evalsets.py supplies items and numbers).
"""

from __future__ import annotations

import re

from cream_engine.evalsets import NUMBER, EvalItem, number_value, parse_number

_MARKER = re.compile(r"\banswer[\s*_]*:", re.IGNORECASE)  # "Answer:", "**Answer:**", "Answer**:"
_ANSWER_IS = re.compile(r"\banswer\s+is\b", re.IGNORECASE)  # "the answer is B"
_DECORATION = " \t*_#>:\"'`"
_LEADING_LETTER = re.compile(r"[(\[]?([A-Z])(?![A-Za-z])")
_LOWER_LETTER = re.compile(r"[(\[]?([a-z])(?:[.):\]]|\s*$)")  # "b", "b.", "(b)", "b) text"
_STANDALONE = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")
# an arithmetic expression from its first number on: numbers, operators, brackets, "=", "$",
# "%", markdown stars and spaces ("2448 + 136 = 3724", "5 x 3 = **15**", "(3 + 4) * 2 = 14")
_EXPRESSION = re.compile(r"[-+\u2212$.\d][\d\s$.,+\-\u2212*/\u00d7\u00f7xX\u00b7^()%=]*")


def extract_answer(text: str, item: EvalItem) -> int | str | None:
    """The reply's final answer: an option index for multiple choice, a normalised number
    string otherwise; None when there is no marker or nothing readable after the one that
    decides (see the module's rules)."""
    marks = sorted([(m.end(), False) for m in _MARKER.finditer(text)]
                   + [(m.end(), True) for m in _ANSWER_IS.finditer(text)])
    for end, is_phrase in reversed(marks):
        value = read_value(_first_line(text[end:]), item)
        if value is not None or not is_phrase:
            return value
    return None


def read_value(line: str, item: EvalItem) -> int | str | None:
    """The answer written on one line: a number or an option, as the item asks."""
    return final_number(line) if item.kind == "number" else _choice(line, item)


def final_number(line: str) -> str | None:
    """The first number on the line, or the result of the expression it opens: the number
    after the expression's last "="."""
    first = NUMBER.search(line)
    if first is None:
        return None
    expression = _EXPRESSION.match(line, first.start())
    _, equals, result = expression.group(0).rpartition("=") if expression else ("", "", "")
    if equals and (value := parse_number(result)) is not None:
        return value
    return number_value(first)


def _first_line(tail: str) -> str:
    """The first line after the marker with something besides markdown on it."""
    for line in tail.splitlines():
        if line.strip(_DECORATION):
            return line.strip(_DECORATION)
    return ""


def _choice(line: str, item: EvalItem) -> int | None:
    """1. the whole line is an option's text; 2. a letter opens the line ("B", "(b)", "B)
    Paris"); 3. a standalone capital letter that is an option's; 4. exactly one option's
    text appears in the line."""
    folded = line.rstrip(" .!").casefold()
    texts = [c.casefold() for c in item.choices]
    if not folded:
        return None
    if folded in texts:
        return texts.index(folded)
    for pattern in (_LEADING_LETTER, _LOWER_LETTER):
        m = pattern.match(line)
        if m and m.group(1).upper() in item.letters:
            return item.letters.index(m.group(1).upper())
    for m in _STANDALONE.finditer(line):
        if m.group(1) in item.letters:
            return item.letters.index(m.group(1))
    found = [i for i, t in enumerate(texts)
             if t and re.search(rf"(?<!\w){re.escape(t)}(?!\w)", folded)]
    found = [i for i in found if not any(texts[i] != texts[j] and texts[i] in texts[j]
                                         for j in found)]  # "7 apples" beats "7"
    return found[0] if len(found) == 1 else None
