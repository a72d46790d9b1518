"""The per-prompt drill-down's reader (`cream_engine.prompt_view`): iteration files written by
the real consistency and pairs stages (on responses and scores rows in the stages' formats,
the judge's scores parsed by the judge's own functions), a prompt without a pair and why,
missing and legacy files, and the rules it shares with the engine held to the engine's own."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from cream_engine import paths
from cream_engine import prompt_view as pv
from cream_engine.config import from_dict
from cream_engine.errors import PipelineError, UsageError
from cream_engine.files import read_jsonl, write_jsonl
from cream_engine.judges.pointwise import mean_score, parse_score
from cream_engine.methods import METHODS
from cream_engine.methods.base import best_and_worst
from cream_engine.stages import consistency, pairs
from cream_engine.stages.consistency import kendall_tau, ordinal_ranks
from cream_engine.store import open_store
from tests.engine.helpers import new_run, tiny_config

TOKENS = [10, 20, 30, 40]


def _context(home: Path, method: str, **sections: dict):
    """A real RunContext on a new run (no model is loaded: these stages read files only)."""
    from cream_engine.context import RunContext

    config = tiny_config(Path("bundled:tiny-random"), run={"method": method, "iterations": 3},
                         **sections)
    run_dir = new_run(home, config)
    return RunContext(run_id=run_dir.name, run_dir=run_dir, home=home,
                      config=from_dict(config), store=open_store(home))


def _generate(ctx, t: int, prompts: dict[str, list[str]]) -> None:
    """responses.jsonl as the generate stage writes it (Prompt.to_json + responses)."""
    write_jsonl(ctx.artifact(t, "generate"), [
        {"prompt_id": pid, "prompt": f"Question {pid}?",
         "messages": [{"role": "user", "content": f"Question {pid}?"}], "responses": texts}
        for pid, texts in prompts.items()])


def _score(ctx, t: int, logps: dict[str, dict], judged: dict[str, list[str]] | None = None
           ) -> None:
    """scores.jsonl as the score stage writes it; the judge's raw texts parsed as it does."""
    rows = []
    for pid, logp in logps.items():
        n = len(logp["current"])
        row = {"prompt_id": pid, "tokens": TOKENS[:n], "prompt_tokens": [7] * n,
               "dtype": "float32", "logp": logp}
        if judged is not None:
            raws = [[text] for text in judged[pid]]
            scores = [[parse_score(x) for x in r] for r in raws]
            row["judge"] = {"scores": scores, "mean": [mean_score(s) for s in scores],
                            "raw": raws, "confidence": [[None] for _ in raws]}
        rows.append(row)
    write_jsonl(ctx.artifact(t, "score"), rows)


def _stages(ctx, t: int) -> None:
    consistency.run(ctx, t)
    pairs.run(ctx, t)


@pytest.fixture
def cream_iteration(tmp_path: Path):
    """CREAM at t = 2 (M2 against M0, previous M1): a prompt ranked the same by both models,
    one reversed, one whose current rewards all tie (M2 = M0 on it: no pair)."""
    ctx = _context(tmp_path / "home", "cream")
    ref = [-50.0, -60.0, -70.0, -80.0]
    _generate(ctx, 2, {"same": ["a", "b", "c", "d"], "flip": ["e", "f", "g", "h"],
                       "tie": ["i", "j", "k", "l"]})
    _score(ctx, 2, {
        "same": {"current": [-49.0, -58.0, -67.0, -76.0], "reference": ref,
                 "previous": [-49.5, -59.0, -68.5, -78.0]},
        "flip": {"current": [-49.0, -58.0, -67.0, -76.0], "reference": ref,
                 "previous": [-48.0, -59.5, -69.8, -79.9]},
        "tie": {"current": list(ref), "reference": ref, "previous": [-49.0, -59.0, -69.0,
                                                                     -79.0]}})
    _stages(ctx, 2)
    return ctx


def test_cream_iteration_as_the_stages_wrote_it(cream_iteration) -> None:
    ctx = cream_iteration
    view = pv.read_iteration(ctx.run_dir, 2)
    s = view.summary
    assert (s.method, s.pair_reward, s.files) == ("cream", "implicit", pv.READ_STAGES)
    assert (s.prompts, s.responses, s.pairs, s.with_tau) == (3, 12, 2, 3)
    by_id = {p.prompt_id: p for p in view.prompts}
    assert [p.prompt_id for p in view.prompts] == ["same", "flip", "tie"]
    assert by_id["same"].tau == 1.0 and by_id["same"].consistency == 1.0
    assert by_id["flip"].tau == -1.0 and by_id["flip"].consistency == 0.0
    # the stage's own numbers: the iteration row it recorded, and the pairs it wrote
    row = next(i for i in ctx.store.iterations(ctx.run_id) if i["iteration"] == 2)
    assert s.mean_tau == pytest.approx(row["mean_tau"])
    assert s.mean_consistency == pytest.approx(row["mean_consistency"])
    written = {p["prompt_id"]: p for p in read_jsonl(ctx.artifact(2, "pairs"))}
    for pid, p in written.items():
        info = by_id[pid].pair
        assert (info.chosen, info.rejected) == (p["chosen_index"], p["rejected_index"])
        assert info.weight == pytest.approx(p["weight"]) and info.labeled
        assert info.agree is None              # CREAM has no judge to agree with
        assert info.margin == pytest.approx(p["rewards"][0] - p["rewards"][1])
    assert by_id["same"].pair.weight == pytest.approx(row["mean_consistency"])  # "average"
    # the prompt without a pair, and why: its current rewards all tie at 0
    tie = by_id["tie"]
    assert tie.pair is None and tie.state == "none" and "tie" not in written
    assert tie.reason_kind == pv.TIED and tie.reason == "tied: all 4 implicit rewards are 0"
    assert s.without_pair == ((pv.TIED, 1),)
    assert s.agreement is None and s.agreement_n == 0
    assert sorted(s.margins) == sorted(p["rewards"][0] - p["rewards"][1]
                                       for p in written.values())
    assert len(s.rewards) == 12 and len(s.consistencies) == 3


def test_one_prompt_in_full(cream_iteration) -> None:
    ctx = cream_iteration
    detail = pv.read_prompt(ctx.run_dir, 2, "flip")
    assert detail.prompt == "Question flip?" and detail.messages == (("user", "Question flip?"),)
    assert [r.text for r in detail.responses] == ["e", "f", "g", "h"]
    assert [r.tokens for r in detail.responses] == TOKENS
    current = [r.reward("implicit") for r in detail.responses]
    previous = [r.reward("previous_implicit") for r in detail.responses]
    assert current == [1.0, 2.0, 3.0, 4.0]              # log π_2 − log π_0
    assert previous == pytest.approx([2.0, 0.5, 0.2, 0.1])   # log π_1 − log π_0
    assert [r.rank("implicit") for r in detail.responses] == [4, 3, 2, 1]   # 1 = highest
    assert [r.rank("previous_implicit") for r in detail.responses] == [1, 2, 3, 4]
    # the ranks shown are the rankings τ_j was computed on
    ranks = [[-r.rank(k) for r in detail.responses] for k in ("implicit", "previous_implicit")]
    assert kendall_tau(*ranks) == detail.summary.tau
    assert (detail.summary.pair.chosen, detail.summary.pair.rejected) == (3, 0)
    assert detail.responses[0].judge_texts == ()       # CREAM: no judge
    assert pv.read_prompt(ctx.run_dir, 2, "nope") is None


def test_judged_methods_and_why_a_prompt_has_no_pair(tmp_path: Path) -> None:
    """SRLM at t = 0 (no previous model, no τ): the judge's scores pick the pairs; a prompt
    whose judgments all tie, one with a single parsable judgment. SCIR: one whose best and
    worst by the judge are the same text."""
    lp = {"current": [-10.0, -40.0, -90.0]}   # per token: -1, -2, -3
    judged = {"ok": ["fine. Score: 4", "meh. Score: 2", "good. Score: 3"],
              "tied": ["Score: 3", "Score: 3", "Score: 3"],
              "unparsable": ["Score: 4", "no score here", "Score: 9"]}
    srlm = _context(tmp_path / "a", "srlm")
    _generate(srlm, 0, {k: ["x", "y", "z"] for k in judged})
    _score(srlm, 0, {k: {"current": lp["current"]} for k in judged}, judged)
    _stages(srlm, 0)
    view = pv.read_iteration(srlm.run_dir, 0)
    by_id = {p.prompt_id: p for p in view.prompts}
    assert view.summary.pair_reward == "judge" and view.summary.pairs == 1
    assert by_id["ok"].tau is None and (by_id["ok"].pair.chosen, by_id["ok"].pair.rejected) \
        == (0, 1)
    # the implicit reward (length-normalised at t = 0) prefers response 0 too: they agree
    assert by_id["ok"].pair.agree is True
    row = next(i for i in srlm.store.iterations(srlm.run_id) if i["iteration"] == 0)
    assert view.summary.agreement == row["agreement"] == 1.0
    assert by_id["tied"].reason == "tied: all 3 judge scores are 3"
    assert by_id["unparsable"].reason_kind == pv.TOO_FEW
    assert by_id["unparsable"].reason == "too few judge scores: 1 of 3 (the others unparsable)"
    assert by_id["unparsable"].judge_unparsable == 2 and view.summary.judge_unparsable == 2
    detail = pv.read_prompt(srlm.run_dir, 0, "unparsable")
    assert [r.judge_scores for r in detail.responses] == [(4.0,), (None,), (None,)]
    assert detail.responses[1].judge_texts == ("no score here",)
    assert [r.rank("judge") for r in detail.responses] == [None] * 3   # incomplete: unranked

    scir = _context(tmp_path / "b", "scir")
    _generate(scir, 0, {"ok": ["x", "y", "z"], "same": ["twin", "other", " twin "]})
    _score(scir, 0, {k: {"current": lp["current"]} for k in ("ok", "same")},
           {"ok": judged["ok"], "same": ["Score: 5", "Score: 3", "Score: 1"]})
    _stages(scir, 0)
    view = pv.read_iteration(scir.run_dir, 0)
    by_id = {p.prompt_id: p for p in view.prompts}
    assert by_id["ok"].pair.labeled is False
    assert by_id["same"].reason_kind == pv.SAME_TEXT
    assert view.summary.without_pair == ((pv.SAME_TEXT, 1),)


def test_missing_and_legacy_files(cream_iteration) -> None:
    ctx = cream_iteration
    folder = paths.iter_dir(ctx.run_dir, 2)
    (folder / "pairs.jsonl").unlink()               # the pairs stage has not run yet
    view = pv.read_iteration(ctx.run_dir, 2)
    assert view.summary.pairs is None and view.summary.files == ("generate", "score",
                                                                 "consistency")
    tie = next(p for p in view.prompts if p.prompt_id == "tie")
    assert tie.state == "pending" and tie.reason_kind == pv.TIED    # a forecast
    assert {p.state for p in view.prompts} == {"pending"}
    # a run from before the stages were renamed: consistency.jsonl was rewards.jsonl
    (folder / "consistency.jsonl").rename(folder / "rewards.jsonl")
    assert pv.read_iteration(ctx.run_dir, 2).summary.mean_tau == view.summary.mean_tau
    (folder / "rewards.jsonl").unlink()
    (folder / "scores.jsonl").unlink()               # still generating: responses only
    view = pv.read_iteration(ctx.run_dir, 2)
    assert view.summary.files == ("generate",) and view.summary.prompts == 3
    assert all(p.tau is None and p.reason_kind == pv.NOT_SCORED for p in view.prompts)
    assert pv.read_prompt(ctx.run_dir, 2, "same").responses[0].rewards == ()
    assert pv.iterations_with_files(ctx.run_dir) == [2]
    pv.check_iteration(ctx.run_dir, 2, "tiny")
    with pytest.raises(UsageError, match=r"run tiny: iteration 1 has no responses.*"
                                         r"\(iterations with files: 2\)"):
        pv.check_iteration(ctx.run_dir, 1, "tiny")
    (folder / "responses.jsonl").write_text('{"prompt_id": "x"\n')
    with pytest.raises(UsageError, match="responses.jsonl:1: not a JSON line"):
        pv.read_iteration(ctx.run_dir, 2)


def test_no_pairs_at_all_is_the_stages_error_not_ours(tmp_path: Path) -> None:
    ctx = _context(tmp_path / "home", "cream")
    _generate(ctx, 2, {"tie": ["a", "b"]})
    _score(ctx, 2, {"tie": {"current": [-1.0, -2.0], "reference": [-1.0, -2.0],
                            "previous": [-1.0, -2.0]}})
    consistency.run(ctx, 2)
    with pytest.raises(PipelineError):
        pairs.run(ctx, 2)
    [tie] = pv.read_iteration(ctx.run_dir, 2).prompts
    assert tie.state == "pending" and tie.reason_kind == pv.TIED


# -- the rules shared with the engine ---------------------------------------------------------


def test_the_method_table_is_the_engines() -> None:
    assert {m: (pv.PAIR_REWARD[m], m in pv.UNLABELED) for m in METHODS} == \
        {m: (method.pair_reward, not method.labeled) for m, method in METHODS.items()}


def test_ranks_and_reasons_follow_the_stages_rules() -> None:
    rng = random.Random(7)
    for _ in range(300):
        n = rng.randint(2, 5)
        values = [rng.choice([None, 1.0, 2.0, rng.uniform(-3, 3)]) for _ in range(n)]
        complete = None not in values
        ranks = pv.display_ranks(values)
        assert (ranks is None) == (not complete)
        if complete:
            assert [n - r for r in ranks] == ordinal_ranks(values)
        why = pv.no_pair_reason("cream", "judge-extremes", {"implicit": values},
                                tuple(range(n)))
        assert (why is None) == (best_and_worst(values) is not None), values
    for a, b in itertools.permutations([1.0, 2.0, 3.0], 2):
        assert pv.no_pair_reason("srlm", "judge-extremes", {"judge": [a, b]}, (0, 1)) is None


@pytest.mark.slow   # (the tiny model generates, judges and scores: about half a minute)
@pytest.mark.parametrize("method", ["srlm", "cream"])
def test_a_real_tiny_iteration(tiny_model_dir: Path, tmp_path: Path, method: str) -> None:
    """generate → score → consistency → pairs on the tiny model, then the drill-down reads
    what they wrote: every pair where pairs.jsonl has one, a reason everywhere else."""
    from cream_engine.context import RunContext
    from cream_engine.stages import generate, score

    home = tmp_path / "home"
    config = tiny_config(tiny_model_dir, run={"iterations": 1, "method": method},
                         generate={"max_new_tokens": 4}, data={"prompts_per_iteration": 8})
    ctx = RunContext.open(new_run(home, config), open_store(home))
    for stage in (generate, score, consistency):
        stage.run(ctx, 0)
    try:
        pairs.run(ctx, 0)
    except PipelineError:           # (every prompt tied: a tiny random model can do that)
        pass
    view = pv.read_iteration(ctx.run_dir, 0)
    written = {p["prompt_id"]: p for p in read_jsonl(ctx.artifact(0, "pairs"))} \
        if ctx.artifact(0, "pairs").exists() else {}
    assert view.summary.prompts == 8 and view.summary.responses == 32
    for p in view.prompts:
        assert (p.pair is not None) == (p.prompt_id in written)
        assert (p.pair is None) == (p.reason is not None), p
        assert p.reason_kind != pv.UNEXPLAINED
        detail = pv.read_prompt(ctx.run_dir, 0, p.prompt_id)
        assert len(detail.responses) == 4 and all(r.tokens for r in detail.responses)
        if method == "srlm":
            assert all(len(r.judge_scores) == 1 for r in detail.responses)
