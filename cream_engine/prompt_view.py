"""What one iteration's prompts became: responses, judge scores, implicit rewards, rankings,
consistency and the chosen pair (for the drill-down screen and `cream show`).

Researchers debug self-rewarding by reading what the model wrote and how it was rewarded; the
stages leave that in four files of `iter-<t>/` (paths.ARTIFACTS): responses.jsonl (generate),
scores.jsonl (score), consistency.jsonl (consistency; `rewards.jsonl` in runs made before the
stages were renamed) and pairs.jsonl (pairs). An iteration still running has only some of
them: what is missing is a value here ("pending"), never an error.

Two reads, both streaming (thousands of prompts with long responses must not sit in memory):
- `read_iteration`: one `PromptSummary` per prompt (no response text) and the iteration's
  `IterationSummary`, for a list;
- `read_prompt`: one prompt's `PromptDetail` (every response, the judge's texts), read on
  demand by scanning for its line.
A prompt without a pair says WHY, derived from the rule the pairs stage applies (stages/pairs.py,
methods/base.py `best_and_worst`, methods/scir.py `pick_pair`).

Light layer: standard library only.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from cream_engine import paths
from cream_engine.errors import UsageError

# What the pairs stage does per method (cream_engine.methods, which the light layer may not
# import; tests/engine/test_prompt_view.py holds these to it): the reward that picks the pair,
# and the methods whose pairs are unlabeled (SCIR: the label is decided in each training step)
PAIR_REWARD = {"srlm": "judge", "cream": "implicit", "dpo": "implicit", "scir": "judge",
               "oracle": "oracle"}
UNLABELED = frozenset({"scir"})
REWARD_LABELS = {"implicit": "implicit reward", "previous_implicit": "implicit reward at t-1",
                 "judge": "judge score", "oracle": "oracle reward"}
READ_STAGES = ("generate", "score", "consistency", "pairs")
PROMPT_CHARS = 200   # of the prompt text in a summary (the detail has all of it)
NOT_SCORED, TIED, TOO_FEW, SAME_TEXT, UNEXPLAINED = (
    "not scored", "tied", "too few rewards", "same text", "not in pairs.jsonl")


# -- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairInfo:
    chosen: int                  # response index (SCIR: y1, labeled only in training)
    rejected: int                # (SCIR: y2)
    weight: float | None         # CREAM's C (mean or C_j), 1 for the others
    rewards: tuple[float | None, float | None]   # the pair reward of chosen, rejected
    labeled: bool
    agree: bool | None           # the other reward (judge vs implicit) prefers it too

    @property
    def margin(self) -> float | None:
        a, b = self.rewards
        return None if a is None or b is None else a - b


@dataclass(frozen=True)
class PromptSummary:
    prompt_id: str
    prompt: str                  # one line, the first PROMPT_CHARS characters
    n_responses: int
    tau: float | None            # τ_j: Kendall τ of the rankings by r_t and r_{t-1}
    consistency: float | None    # C_j = (τ_j + 1) / 2
    pair: PairInfo | None
    pairs_made: bool             # pairs.jsonl exists (else the reason is a forecast)
    reason_kind: str | None      # why there is no pair: TIED, TOO_FEW, ...
    reason: str | None           # the same in words
    judge_unparsable: int | None

    @property
    def state(self) -> str:
        """pair, none (the pairs stage dropped it), or pending (no pairs.jsonl yet)."""
        return "pair" if self.pair is not None else ("none" if self.pairs_made else "pending")


@dataclass(frozen=True)
class IterationSummary:
    run_dir: str
    iteration: int
    method: str
    pair_reward: str             # the reward that picks the pair (PAIR_REWARD)
    files: tuple[str, ...]       # the stages whose file is there (READ_STAGES order)
    prompts: int
    responses: int
    empty_responses: int
    with_tau: int
    mean_tau: float | None
    mean_consistency: float | None
    pairs: int | None            # None: no pairs.jsonl yet
    without_pair: tuple[tuple[str, int], ...]   # (reason kind, prompts), most first
    agreement: float | None      # share of pairs where judge and implicit reward agree
    agreement_n: int
    judge_unparsable: int | None
    rewards: tuple[float, ...]   # every defined pair reward (histograms)
    margins: tuple[float, ...]   # chosen − rejected of each pair
    consistencies: tuple[float, ...]


@dataclass(frozen=True)
class IterationView:
    summary: IterationSummary
    prompts: tuple[PromptSummary, ...]


@dataclass(frozen=True)
class ResponseDetail:
    index: int
    text: str
    tokens: int | None
    rewards: tuple[tuple[str, float | None], ...]   # (reward name, value) as recorded
    ranks: tuple[tuple[str, int | None], ...]       # 1 = highest, per complete reward
    judge_scores: tuple[float | None, ...]          # the K judgments (None: unparsable)
    judge_texts: tuple[str, ...]
    judge_confidence: tuple[float | None, ...]

    def reward(self, name: str) -> float | None:
        return dict(self.rewards).get(name)

    def rank(self, name: str) -> int | None:
        return dict(self.ranks).get(name)


@dataclass(frozen=True)
class PromptDetail:
    summary: PromptSummary
    iteration: int
    method: str
    pair_reward: str
    prompt: str
    messages: tuple[tuple[str, str], ...]           # (role, content) of the conversation
    responses: tuple[ResponseDetail, ...]


# -- files ----------------------------------------------------------------------------------


def artifact(run_dir: Path, t: int, stage: str) -> Path | None:
    """The file `stage` wrote for iteration t (its legacy name in an old run), or None."""
    folder = paths.iter_dir(Path(run_dir), t)
    name = paths.ARTIFACTS[stage]
    if (folder / name).is_file():
        return folder / name
    for old, new in paths.LEGACY_ARTIFACTS.items():
        if new == name and (folder / old).is_file():
            return folder / old
    return None


def iterations_with_files(run_dir: Path) -> list[int]:
    """The iterations that have at least one of the files read here."""
    found = []
    for folder in Path(run_dir).glob("iter-*"):
        t = folder.name.removeprefix("iter-")
        if t.isdigit() and any(artifact(run_dir, int(t), s) for s in READ_STAGES):
            found.append(int(t))
    return sorted(found)


def check_iteration(run_dir: Path, t: int, run_name: str) -> None:
    """Refuse (one line, exit 2) an iteration with none of the files yet."""
    if t >= 0 and any(artifact(run_dir, t, s) for s in READ_STAGES):
        return
    have = iterations_with_files(run_dir)
    listed = ", ".join(map(str, have)) if have else "none yet: nothing was generated"
    raise UsageError(f"run {run_name}: iteration {t} has no responses, scores or pairs "
                     f"(iterations with files: {listed})")


def _rows(path: Path | None) -> Iterator[dict]:
    """The objects of a JSON Lines file, one at a time."""
    if path is None:
        return
    with open(path, encoding="utf-8", newline="\n") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                yield _parsed(path, lineno, line)


def _parsed(path: Path, lineno: int, line: str) -> dict:
    try:
        row = json.loads(line)
    except ValueError as e:
        raise UsageError(f"{path}:{lineno}: not a JSON line ({e})") from None
    if not isinstance(row, dict) or "prompt_id" not in row:
        raise UsageError(f"{path}:{lineno}: a row without prompt_id")
    return row


def _find(path: Path | None, prompt_id: str) -> dict | None:
    """One prompt's row: lines that cannot hold its id are not parsed (responses are long)."""
    if path is None:
        return None
    needle = json.dumps(prompt_id, ensure_ascii=False)
    with open(path, encoding="utf-8", newline="\n") as fh:
        for lineno, line in enumerate(fh, 1):
            if needle in line:
                row = _parsed(path, lineno, line)
                if row["prompt_id"] == prompt_id:
                    return row
    return None


def run_method(run_dir: Path, method: str | None = None) -> tuple[str, str]:
    """(method, SCIR's pair selection) from the run's config.toml (`method` wins)."""
    try:
        with open(Path(run_dir) / paths.CONFIG_NAME, "rb") as fh:
            config = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        config = {}
    method = method or str(config.get("run", {}).get("method", "cream"))
    return method, str(config.get("scir", {}).get("pair_selection", "judge-extremes"))


# -- rules the stages apply -----------------------------------------------------------------


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def display_ranks(values: list[Any] | None) -> tuple[int, ...] | None:
    """Rank 1 = highest, from the consistency stage's ordinal ranks (equal values ranked by
    index, earlier = lower); None unless every value is defined (such prompts have no τ)."""
    if not values or not all(_finite(v) for v in values):
        return None
    order = sorted(range(len(values)), key=lambda i: (values[i], i))
    ranks = [0] * len(values)
    for position, i in enumerate(order):
        ranks[i] = len(values) - position
    return tuple(ranks)


def no_pair_reason(method: str, selection: str, rewards: dict | None,
                   texts: tuple[int, ...] | None) -> tuple[str, str] | None:
    """(kind, words) of why the pairs stage makes no pair of this prompt, or None when it
    makes one. `texts` identifies each response's stripped text (equal ones are equal)."""
    if rewards is None:
        return NOT_SCORED, "not scored: no row in consistency.jsonl"
    n = len(texts) if texts is not None else len(rewards.get("implicit") or ())
    if method in UNLABELED and selection == "random":   # methods/scir.py: any two texts
        if texts is not None and len(set(texts)) < 2:
            return SAME_TEXT, f"fewer than two distinct responses ({n} identical)"
        return None
    name = PAIR_REWARD.get(method, "implicit")
    label = REWARD_LABELS.get(name, name)
    valid = [(v, i) for i, v in enumerate(rewards.get(name) or ()) if _finite(v)]
    if len(valid) < 2:                  # methods/base.py best_and_worst
        missing = " (the others unparsable)" if name == "judge" and valid else ""
        return TOO_FEW, f"too few {label}s: {len(valid)} of {n}{missing}"
    best = max(valid, key=lambda v: (v[0], -v[1]))
    worst = min(valid, key=lambda v: (v[0], -v[1]))
    if best[0] == worst[0]:
        return TIED, f"tied: all {len(valid)} {label}s are {best[0]:.4g}"
    if method in UNLABELED and texts is not None and texts[best[1]] == texts[worst[1]]:
        return SAME_TEXT, f"same text: the best and worst by {label} are identical"
    return None


def pair_agrees(row: dict, pair_reward: str) -> bool | None:
    """This pair's vote in the iteration's agreement (stages/pairs.py `agreement`)."""
    other = "implicit" if pair_reward == "judge" else "judge"
    o = (row.get("other_rewards") or {}).get(other)
    if not o or None in o:
        return None
    if row.get("labeled", True):
        return o[0] > o[1]
    r = row.get("rewards") or [None, None]
    if None in r or r[0] == r[1]:
        return None
    return (o[0] > o[1]) == (r[0] > r[1])


# -- reading --------------------------------------------------------------------------------


def _one_line(text: Any, limit: int = PROMPT_CHARS) -> str:
    return " ".join(str(text or "").split())[:limit]


def _text_keys(responses: list) -> tuple[int, ...]:
    """Equal stripped texts get equal keys (the order of first appearance)."""
    first: dict[str, int] = {}
    return tuple(first.setdefault(str(r).strip(), len(first)) for r in responses)


def _summary(pid: str, e: dict, method: str, selection: str, pairs_made: bool
             ) -> PromptSummary:
    pair_row, rewards = e.get("pair"), e.get("rewards")
    pair = None
    if pair_row is not None:
        r = list(pair_row.get("rewards") or [None, None]) + [None, None]
        pair = PairInfo(int(pair_row["chosen_index"]), int(pair_row["rejected_index"]),
                        pair_row.get("weight"), (r[0], r[1]), bool(pair_row.get("labeled", True)),
                        pair_agrees(pair_row, PAIR_REWARD.get(method, "implicit")))
    why = None if pair else no_pair_reason(method, selection, rewards, e.get("texts"))
    if why is None and pair is None and pairs_made:
        why = UNEXPLAINED, "no row in pairs.jsonl (the stage's rule would have made one)"
    n = e.get("n")
    if n is None:
        n = len((rewards or {}).get("implicit") or ())
    return PromptSummary(pid, e.get("prompt", ""), n, e.get("tau"), e.get("consistency"), pair,
                         pairs_made, why[0] if why else None, why[1] if why else None,
                         e.get("judge_unparsable"))


def _add(entry: dict, stage: str, row: dict) -> None:
    """Keep what the summaries need of a row (no response or judge text)."""
    if stage == "generate":
        responses = list(row.get("responses") or ())
        entry.update(prompt=_one_line(row.get("prompt")), n=len(responses),
                     texts=_text_keys(responses), empty=sum(1 for r in responses if not r))
    elif stage == "consistency":
        entry.update(rewards=row.get("rewards") or {}, tau=row.get("tau"),
                     consistency=row.get("consistency"),
                     judge_unparsable=row.get("judge_unparsable"))
    elif stage == "pairs":
        entry["pair"] = {k: row.get(k) for k in ("chosen_index", "rejected_index", "weight",
                                                   "rewards", "other_rewards", "labeled")}
        entry.setdefault("prompt", _one_line(row.get("prompt")))


def read_iteration(run_dir: Path, t: int, method: str | None = None) -> IterationView:
    """Every prompt of iteration t, summarised, in generation order (streamed)."""
    run_dir = Path(run_dir)
    method, selection = run_method(run_dir, method)
    found = {s: artifact(run_dir, t, s) for s in READ_STAGES}
    entries: dict[str, dict] = {}
    for stage in ("generate", "consistency", "pairs"):
        for row in _rows(found[stage]):
            _add(entries.setdefault(str(row["prompt_id"]), {}), stage, row)
    pairs_made = found["pairs"] is not None
    prompts = tuple(_summary(pid, e, method, selection, pairs_made)
                    for pid, e in entries.items())
    return IterationView(_iteration_summary(run_dir, t, method, found, entries, prompts),
                         prompts)


def _iteration_summary(run_dir: Path, t: int, method: str, found: dict, entries: dict,
                       prompts: tuple[PromptSummary, ...]) -> IterationSummary:
    pair_reward = PAIR_REWARD.get(method, "implicit")
    taus = [p.tau for p in prompts if _finite(p.tau)]
    cs = [p.consistency for p in prompts if _finite(p.consistency)]
    votes = [p.pair.agree for p in prompts if p.pair and p.pair.agree is not None]
    rewards = [v for e in entries.values()
               for v in ((e.get("rewards") or {}).get(pair_reward) or ()) if _finite(v)]
    margins = [m for p in prompts if p.pair and _finite(m := p.pair.margin)]
    unparsable = [p.judge_unparsable for p in prompts if p.judge_unparsable is not None]
    dropped = Counter(p.reason_kind for p in prompts if p.pair is None and p.reason_kind)
    return IterationSummary(
        str(run_dir), t, method, pair_reward,
        tuple(s for s in READ_STAGES if found[s] is not None), len(prompts),
        sum(e.get("n", 0) for e in entries.values()),
        sum(e.get("empty", 0) for e in entries.values()), len(taus),
        statistics.fmean(taus) if taus else None, statistics.fmean(cs) if cs else None,
        sum(1 for p in prompts if p.pair) if found["pairs"] else None,
        tuple(dropped.most_common()), sum(votes) / len(votes) if votes else None, len(votes),
        sum(unparsable) if unparsable else None, tuple(rewards), tuple(margins), tuple(cs))


def read_prompt(run_dir: Path, t: int, prompt_id: str, method: str | None = None
                ) -> PromptDetail | None:
    """One prompt in full (every response, the judge's texts), or None when no file of
    iteration t has it."""
    run_dir = Path(run_dir)
    method, selection = run_method(run_dir, method)
    found = {s: artifact(run_dir, t, s) for s in READ_STAGES}
    rows = {s: _find(found[s], prompt_id) for s in READ_STAGES}
    if not any(rows.values()):
        return None
    entry: dict = {}
    for stage in ("generate", "consistency", "pairs"):
        if rows[stage] is not None:
            _add(entry, stage, rows[stage])
    summary = _summary(prompt_id, entry, method, selection, found["pairs"] is not None)
    source = rows["generate"] or rows["pairs"] or {}
    texts = list((rows["generate"] or {}).get("responses") or ())
    scores, cons = rows["score"] or {}, rows["consistency"] or {}
    rewards = {k: v for k, v in (cons.get("rewards") or {}).items() if isinstance(v, list)}
    n = max([len(texts), summary.n_responses] + [len(v) for v in rewards.values()])
    if rows["generate"] is None and rows["pairs"] is not None:  # the pair keeps two texts
        texts = [""] * n
        for key, role in (("chosen_index", "chosen"), ("rejected_index", "rejected")):
            if isinstance(rows["pairs"].get(key), int) and rows["pairs"][key] < n:
                texts[rows["pairs"][key]] = str(rows["pairs"].get(role, ""))
    judge = scores.get("judge") or {}
    ranks = {k: display_ranks(v) for k, v in rewards.items()}
    responses = tuple(ResponseDetail(
        i, texts[i] if i < len(texts) else "", _at(scores.get("tokens"), i),
        tuple((k, _at(v, i)) for k, v in rewards.items()),
        tuple((k, r[i] if r is not None and i < len(r) else None) for k, r in ranks.items()),
        tuple(_at(cons.get("judge_scores") or judge.get("scores"), i) or ()),
        tuple(_at(cons.get("judge_raw") or judge.get("raw"), i) or ()),
        tuple(_at(judge.get("confidence"), i) or ())) for i in range(n))
    messages = tuple((str(m.get("role", "")), str(m.get("content", "")))
                     for m in source.get("messages") or () if isinstance(m, dict))
    return PromptDetail(summary, t, method, PAIR_REWARD.get(method, "implicit"),
                        str(source.get("prompt", "")), messages, responses)


def _at(values: Any, i: int) -> Any:
    return values[i] if isinstance(values, list) and i < len(values) else None
