"""LLM-as-a-Judge, pointwise: the model grades one response with an additive 5-point rubric.

Two scoring modes (`[judge] score_mode`):
- `parse`: the judge writes a justification and ends with "Score: k"; the *last* "Score:" number
  is the score. An unparsable judgment is missing (None), never a score, and is counted.
- `expected`: after the justification (or directly, with `max_new_tokens = 0`), "Score:" is
  appended and the next-token distribution over the digits 0-5 is read; the score is
  Σ k·p(k) renormalised over those digits, and the probability mass on the digits is the
  judge's confidence. Small models (our 135M demo) rarely write a parsable score; this mode
  always gives one.

Pure text and number handling only; the model calls live in `stages/score.py`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

SCORE_RE = re.compile(r"score\s*[:=]\s*\**\s*([0-5](?:\.\d+)?)(?![\d.]*\d)", re.IGNORECASE)
MAX_SCORE = 5

# The additive 5-point rubric of Self-Rewarding Language Models (Yuan et al. 2024), every
# clause of it, in our own words. The prompt itself never holds "Score:" followed by a digit, so
# a judge that echoes it cannot seem to have scored.
RUBRIC = """Please grade the assistant's reply to the user's request below on an additive \
5-point scale. Start from 0 and add each point whose condition the reply meets:
- 1 point if the reply is relevant and gives some information connected to the request, even \
when it is incomplete or includes some irrelevant material.
- 1 more point if it deals with a substantial part of the user's question, even though it does \
not fully resolve the query or give a direct answer.
- 1 more point if it answers the basic elements of the question in a useful way, whether or not \
it reads as if an AI wrote it and even if it has features typical of blogs or search results.
- 1 more point if it is clearly written from an AI assistant's point of view and addresses the \
question directly and comprehensively, and is well organised and helpful, even if it could \
still be a little clearer, more concise or more focused.
- 1 more point if it is impeccably tailored to the question, with no extraneous information, \
reflects expert knowledge, and is a high-quality, engaging and insightful answer.

[Request]
{instruction}

[Reply]
{response}

Judge the reply from the AI assistant's perspective, drawing on web search knowledge where \
needed. Justify the total in at most 100 words, then finish with a final line of the form \
"Score: <points>", where <points> is the total from 0 to 5."""


def judge_messages(instruction: str, response: str) -> list[dict]:
    """The chat messages that ask the model to grade `response` to `instruction`."""
    return [{"role": "user", "content": RUBRIC.format(instruction=instruction.strip(),
                                                      response=response.strip())}]


def parse_score(text: str) -> float | None:
    """The number after the last "Score:" if it is within 0-5, else None (missing)."""
    matches = SCORE_RE.findall(text)
    if not matches:
        return None
    value = float(matches[-1])
    return value if 0 <= value <= MAX_SCORE else None


@dataclass(frozen=True)
class ExpectedScore:
    score: float          # Σ k·p(k) over the digits, renormalised
    confidence: float     # probability mass the model put on the digits at all


def expected_score(digit_logprobs: list[float]) -> ExpectedScore:
    """From the log-probabilities of the next tokens "0".."5" (in that order)."""
    if len(digit_logprobs) != MAX_SCORE + 1:
        raise ValueError("expected log-probabilities for the digits 0..5")
    probs = [math.exp(lp) for lp in digit_logprobs]
    mass = sum(probs)
    if mass <= 0 or not math.isfinite(mass):
        return ExpectedScore(float("nan"), 0.0)
    return ExpectedScore(sum(k * p for k, p in enumerate(probs)) / mass, mass)


def mean_score(scores: list[float | None]) -> float | None:
    """Average of the K judgments that gave a score; None when none did."""
    valid = [s for s in scores if s is not None and math.isfinite(s)]
    return sum(valid) / len(valid) if valid else None
