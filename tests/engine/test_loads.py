"""Model loads (issue 13, part 4): each distinct model loaded at most once per stage, and kept
for the next stage while memory allows (RunContext.load). The training processes load their own
copy of M_t: not counted here (they are not the context's loads).

A real 3-iteration tiny run (method cream, evaluation on; M0 is also the evaluation's judge).
Expected loads, per stage, and why:
- baseline (t = 0): M0.
- generate: nothing new: M_t is loaded already (M0 from the baseline at t = 0, else M_t as
  the previous evaluation's policy).
- score: the passes whose model is not in memory: M0 is kept beside the policy (the previous
  evaluation's judge), so only M1 at t = 2 (M_{t-1}).
- consistency, pairs: none. train: none here (ctx.release() first; its processes load M_t).
- evaluate: M_{t+1}, then M0 as the judge, kept beside it.
So 3, 2 and 3 loads (8). Before (one model kept at a time, and every evaluation releasing its
models) it was 4, 4 and 5 (13), plus 3 by the trainer (16 in all).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from cream_engine.store import open_store
from tests.engine.helpers import engine, finish, new_run, tiny_config

EXPECTED = {
    (0, "baseline"): ["M0"], (0, "evaluate"): ["M1", "M0"],
    (1, "evaluate"): ["M2", "M0"],
    (2, "score"): ["M1"], (2, "evaluate"): ["M3", "M0"],
}
LOAD = re.compile(r"^model load \d+: (\S+) in ")
DONE = re.compile(r"^iter (\d+) (\w+): done in ")


def loads_by_stage(stderr: str) -> dict[tuple[int, str], list[str]]:
    """The models each stage loaded, from the engine's stderr (the job log): the loads printed
    before a stage's "done" line are that stage's."""
    out: dict[tuple[int, str], list[str]] = {}
    pending: list[str] = []
    for line in stderr.splitlines():
        if m := LOAD.match(line):
            pending.append(m.group(1))
        elif m := DONE.match(line):
            if pending:
                out[(int(m.group(1)), m.group(2))] = pending
            pending = []
    assert not pending, f"loads after the last stage: {pending}"
    return out


@pytest.mark.slow  # (a 3-iteration run: ~45 s)
def test_three_iterations_load_each_model_once_per_stage(tiny_model_dir: Path,
                                                         tmp_path: Path) -> None:
    config = tiny_config(tiny_model_dir, run={"iterations": 3},
                         data={"prompts_per_iteration": 4},
                         generate={"n": 3, "max_new_tokens": 8},
                         eval={"max_items": 2, "max_new_tokens": 8, "win_rate_prompts": 2})
    run_dir = new_run(tmp_path / "home", config)
    code, err = finish(engine(run_dir), timeout=900)
    assert code == 0, err[-3000:]
    found = loads_by_stage(err)
    assert found == {k: v for k, v in EXPECTED.items() if v}, found
    per_iteration = [sum(len(v) for (t, _), v in found.items() if t == i) for i in range(3)]
    # 3, 2 and 3
    assert per_iteration == [sum(len(v) for (t, _), v in EXPECTED.items() if t == i)
                             for i in range(3)]
    # the score stage says what it loaded, in the store
    store = open_store(tmp_path / "home")
    for row in store.stages(run_dir.name):
        if row["stage"] == "score":
            info = json.loads(row["info"])
            assert info["models_loaded"] == EXPECTED.get((row["iteration"], "score"), [])
            assert info["passes"][0] == "current"  # M_t, left in memory by generate


# -- the memory rule ---------------------------------------------------------------------------


@pytest.fixture
def ctx(tiny_model_dir: Path, tmp_path: Path):
    """A run's context whose M1 and M2 are copies of the tiny model (no training)."""
    from cream_engine.context import RunContext

    home = tmp_path / "home"
    run_dir = new_run(home, tiny_config(tiny_model_dir, run={"iterations": 2}))
    context = RunContext.open(run_dir, open_store(home))
    for k in (1, 2):
        shutil.copytree(tiny_model_dir, context.model_path(k))
    return context


def test_models_stay_loaded_while_they_fit(ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    from cream_engine.context import model_bytes, weights_bytes

    m0, m1, m2 = (ctx.model_path(k) for k in range(3))
    size = weights_bytes(m0, 4)
    model, _ = ctx.load(m0)
    # read from the headers = what the loaded model holds (but small non-saved buffers)
    assert size == pytest.approx(model_bytes(model), rel=1e-3)

    monkeypatch.setattr(ctx, "memory_available", lambda: 100 * size)  # room for all
    ctx.load(m1)
    assert ctx.load(m0)[0] is model and ctx.loads == ["M0", "M1"]  # (M0 used last now)
    # room for two of three: the least recently used goes (M1), M0 stays beside M2
    monkeypatch.setattr(ctx, "memory_available", lambda: int(2.5 * size))
    ctx.load(m2)
    assert [ctx.loaded(p) for p in (m0, m1, m2)] == [True, False, True]
    # room for one: M0 goes last, but it goes
    monkeypatch.setattr(ctx, "memory_available", lambda: 0)
    ctx.load(m1)
    assert [ctx.loaded(p) for p in (m0, m1, m2)] == [False, True, False]
    assert ctx.loads == ["M0", "M1", "M2", "M1"]
    ctx.release()
    assert not any(ctx.loaded(p) for p in (m0, m1, m2))


def test_m0_is_kept_before_a_more_recent_model(ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    from cream_engine.context import weights_bytes

    m0, m1, m2 = (ctx.model_path(k) for k in range(3))
    size = weights_bytes(m0, 4)
    monkeypatch.setattr(ctx, "memory_available", lambda: 100 * size)
    ctx.load(m0)
    ctx.load(m1)  # M0 is now the least recently used, and stays all the same
    monkeypatch.setattr(ctx, "memory_available", lambda: int(2.5 * size))
    ctx.load(m2)
    assert [ctx.loaded(p) for p in (m0, m1, m2)] == [True, False, True]
