"""The ETA from measured stage durations: exact when stages take what they took before, steady
across stage boundaries, borrowed from earlier runs of the same shape only, unknown rather than
guessed, and queue-wide over the worker's slots."""

from __future__ import annotations

from pathlib import Path

import pytest

from cream_engine import eta, results
from cream_engine.config import from_dict, to_toml
from cream_engine.store import Store, open_store

TOOK = {"baseline": 300.0, "generate": 100.0, "score": 50.0, "consistency": 2.0, "pairs": 1.0,
        "train": 200.0, "evaluate": 400.0}


def config(name: str = "a", iterations: int = 3, n: int = 4, **more: dict) -> str:
    return to_toml(from_dict({"run": {"name": name, "method": "cream", "iterations": iterations,
                                      "seed": len(name)},
                              "generate": {"n": n}, **more}))


class Clock:
    """A run played stage by stage on a fake clock, written to a real store."""

    def __init__(self, store: Store, run_id: str, toml: str, iterations: int, start: float):
        self.store, self.run_id, self.now = store, run_id, start
        store.create_run(run_id, name=run_id, method="cream", model="m", iterations=iterations,
                         run_dir=f"/x/{run_id}", config_toml=toml, status="running")

    def stage(self, t: int, name: str, took: float | None = None) -> None:
        took = TOOK[name] if took is None else took
        self.store.execute(
            "INSERT INTO stages (run_id, iteration, stage, status, done_items, total_items, "
            "started_at, ended_at) VALUES (?,?,?,'done',10,10,?,?)",
            [self.run_id, t, name, self.now, self.now + took])
        self.now += took

    def running(self, t: int, name: str, done: int, total: int, spent: float) -> None:
        self.store.execute(
            "INSERT INTO stages (run_id, iteration, stage, status, done_items, total_items, "
            "started_at) VALUES (?,?,?,'running',?,?,?)",
            [self.run_id, t, name, done, total, self.now])
        self.now += spent

    def eta(self) -> float | None:
        return results.run_summaries(self.store, self.now, self.run_id)[0].eta


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(tmp_path / "home")
    yield s
    s.close()


def iteration_stages(t: int) -> list[str]:
    return (["baseline"] if t == 0 else []) + ["generate", "score", "consistency", "pairs",
                                               "train", "evaluate"]


def test_the_eta_is_exact_and_steady_once_every_stage_was_measured(store: Store) -> None:
    run = Clock(store, "r1", config(), 3, 1000.0)
    per_iteration = sum(v for k, v in TOOK.items() if k != "baseline")
    for name in iteration_stages(0)[:-2]:
        run.stage(0, name)
        assert run.eta() is None        # training never measured for this shape: unknown
    run.stage(0, "train")
    # M_1's evaluation, not measured yet, priced like M0's (300 s); then measured (400 s)
    assert run.eta() == pytest.approx(300 + 2 * (per_iteration - 400 + 300))
    run.stage(0, "evaluate")
    assert run.eta() == 2 * per_iteration
    seen = []
    for t in (1, 2):
        for name in iteration_stages(t):
            # halfway through a stage, at its measured rate: exactly what is left
            run.running(t, name, 5, 10, TOOK[name] / 2)
            left = sum(TOOK[s] for s in iteration_stages(t)[iteration_stages(t).index(name):])
            assert run.eta() == pytest.approx(left - TOOK[name] / 2 + (2 - t) * per_iteration)
            store.execute("DELETE FROM stages WHERE run_id = 'r1' AND iteration = ? AND "
                          "stage = ?", [t, name])
            run.now -= TOOK[name] / 2
            run.stage(t, name)
            seen.append(run.eta())
    # at every boundary the estimate fell by exactly the stage just done: no jumps
    expected = [(2 - t) * per_iteration - sum(TOOK[s] for s in iteration_stages(t)[:i + 1])
                + per_iteration for t in (1, 2) for i in range(6)]
    assert seen == pytest.approx(expected) and seen[-1] == 0.0


def test_earlier_runs_of_the_same_shape_price_a_new_run(store: Store) -> None:
    old = Clock(store, "old", config("old", iterations=1), 1, 0.0)
    for name in iteration_stages(0):
        old.stage(0, name)
    store.execute("UPDATE runs SET status = 'done' WHERE id = 'old'")
    # another name, iteration count and seed: the same shape
    new = Clock(store, "new", config("new", iterations=2), 2, 10_000.0)
    new.running(0, "baseline", 0, 0, 100.0)
    per_iteration = sum(v for k, v in TOOK.items() if k != "baseline")
    assert new.eta() == pytest.approx(200.0 + 2 * per_iteration)
    # four samples instead of eight: another shape, nothing to go on
    other = Clock(store, "other", config("other", n=8), 3, 20_000.0)
    other.running(0, "baseline", 0, 0, 100.0)
    assert other.eta() is None


def test_a_queued_run_and_the_queue(store: Store) -> None:
    old = Clock(store, "old", config("old", iterations=1), 1, 0.0)
    for name in iteration_stages(0):
        old.stage(0, name)
    store.execute("UPDATE runs SET status = 'done' WHERE id = 'old'")
    store.create_run("q", name="q", method="cream", model="m", iterations=2, run_dir="/x/q",
                     config_toml=config("q", iterations=2))
    row = {r.id: r for r in results.run_summaries(store, 50_000.0)}["q"]
    per_iteration = sum(v for k, v in TOOK.items() if k != "baseline")
    assert row.eta is None and row.estimate == pytest.approx(300.0 + 2 * per_iteration)
    # two slots free in 100 s and 500 s; three queued runs of 1000 s go first to the first free
    assert eta.queue_remaining([100.0, 500.0], [1000.0, 1000.0, 1000.0]) == 2100.0
    assert eta.queue_remaining([], [50.0, 70.0]) == 120.0
    assert eta.queue_remaining([100.0], [None]) is None
    assert eta.queue_remaining([], []) is None


def test_the_plan_follows_the_config() -> None:
    plan = eta.plan(eta.shape_of(config(iterations=4, eval={"every": 2},
                                        sft={"enabled": True}))[1], 4)
    assert plan[:3] == [(0, "baseline"), (0, "sft"), (0, "sft-eval")]
    assert [t for t, s in plan if s == "evaluate"] == [1, 3]
    off = eta.plan(eta.shape_of(config(eval={"enabled": False}))[1], 3)
    assert not [s for _, s in off if s in ("baseline", "evaluate", "sft")]
    assert eta.shape_of(config("x"))[0] == eta.shape_of(config("y", iterations=9))[0]
    assert eta.shape_of(config("x"))[0] != eta.shape_of(config("x", n=2))[0]


def test_an_evaluation_not_run_yet_is_priced_like_the_others(store: Store) -> None:
    """With `[eval] every = 3` only M0 and the last model are evaluated: after iteration 0 the
    last evaluation is priced at M0's (the longest evaluation this run measured)."""
    run = Clock(store, "r", config(iterations=3, eval={"every": 3}), 3, 0.0)
    for name in iteration_stages(0)[:-1]:            # baseline … train, no evaluate
        run.stage(0, name)
    per_iteration = sum(v for k, v in TOOK.items() if k not in ("baseline", "evaluate"))
    assert run.eta() == pytest.approx(2 * per_iteration + TOOK["baseline"])
