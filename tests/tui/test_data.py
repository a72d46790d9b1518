"""The dashboard's data layer without a screen: downsampling, incremental series, ETA on a
fixed clock and the text helpers."""

from __future__ import annotations

import contextlib
from pathlib import Path

from cream_engine.metric_reads import BUCKETS, Buckets
from cream_engine.store import Store, open_store
from cream_tui import format as fmt
from cream_tui.data import DataSource, empty_message
from cream_tui.series import RunSeries, downsample_minmax
from cream_tui.widgets.runs_table import gpu_text
from tests.tui.fixtures import NOW, no_gpu


def test_downsampling_keeps_each_buckets_min_and_max_and_the_ends() -> None:
    points = [(float(x), 1.0) for x in range(1000)]
    points[503] = (503.0, 9.0)      # a spike
    points[777] = (777.0, -4.0)     # a dip
    out = downsample_minmax(points, 50)
    assert len(out) <= 2 * 50 + 2
    assert (503.0, 9.0) in out and (777.0, -4.0) in out
    assert out[0] == (0.0, 1.0) and out[-1] == (999.0, 1.0)
    assert [x for x, _ in out] == sorted(x for x, _ in out)


def test_downsampling_leaves_short_series_and_drops_non_finite_values() -> None:
    points = [(0.0, 1.0), (1.0, float("nan")), (2.0, None), (3.0, 2.0)]
    assert downsample_minmax(points, 10) == [(0.0, 1.0), (3.0, 2.0)]
    assert downsample_minmax([], 10) == []


def test_series_read_only_new_rows_and_reset_when_a_stage_restarts(store: Store) -> None:
    store.log_metrics("r", 0, "train", 1, {"loss": 0.7, "grad_norm": 3.0})
    store.log_metrics("other", 0, "train", 1, {"loss": 9.0})
    series = RunSeries("r", ("loss",))
    assert series.update(store, fingerprint=("a",))
    assert series.series("loss", series.offsets(), 100) == ((1, 0.7),)
    assert not series.update(store, fingerprint=("a",))          # nothing new
    store.log_metrics("r", 0, "train", 2, {"loss": 0.6})
    store.log_metrics("r", 1, "train", 1, {"loss": 0.5})
    assert series.update(store, fingerprint=("a",))
    offsets = series.offsets()
    assert offsets == {0: 0, 1: 2}
    assert series.series("loss", offsets, 100) == ((1, 0.7), (2, 0.6), (3, 0.5))
    assert series.last("loss") == (1, 1, 0.5)
    store.execute("DELETE FROM metrics WHERE run_id = 'r' AND iteration = 1")
    assert series.update(store, fingerprint=("b",))              # the stage started again
    assert series.series("loss", series.offsets(), 100) == ((1, 0.7), (2, 0.6))


def test_a_long_series_is_read_bucketed_and_keeps_its_spikes(store: Store) -> None:
    """Past 2 * BUCKETS rows a read is SQLite's min/max per bucket of steps; a long series is
    first drawn from a sample of its steps, read exactly at the next update; rows written
    later land in their buckets; a bucket's spike and dip survive all of it."""
    n = 20 * BUCKETS
    values = [0.5 + 0.001 * (s % 7) for s in range(n)]
    values[4321], values[8765] = 9.0, -3.0          # odd steps: not in a sample of even ones
    store.executemany("INSERT INTO metrics (run_id, iteration, stage, step, name, value, time) "
                      "VALUES ('r', 0, 'train', ?, 'loss', ?, 0)", list(enumerate(values)))
    series = RunSeries("r", ("loss",))
    series.update(store, fingerprint=("a",))
    group = series.groups[("loss", 0)]
    assert group.coarse and group.width == 20 and len(group.cells) <= BUCKETS
    assert series.last("loss") == (0, n - 1, values[-1])
    assert 9.0 not in {v for _, v in series.series("loss", series.offsets(), 60)}
    version = series.version
    assert series.update(store, fingerprint=("a",)) and series.version > version
    group = series.groups[("loss", 0)]
    assert not group.coarse and group.width == 20
    drawn = series.series("loss", series.offsets(), 60)
    assert len(drawn) <= 2 * 60 + 2
    assert max(v for _, v in drawn) == 9.0 and min(v for _, v in drawn) == -3.0
    assert not series.update(store, fingerprint=("a",))   # exact, nothing new: no change
    for step in range(n, 3 * n):                     # the run goes on: merged as it grows
        store.log_metrics("r", 0, "train", step, {"loss": 7.5 if step == 2 * n else 0.5})
    assert series.update(store, fingerprint=("a",))
    assert group.width == 40 and len(group.cells) <= 2 * BUCKETS
    drawn = series.series("loss", series.offsets(), 60)
    assert {9.0, -3.0, 7.5} <= {v for _, v in drawn}
    assert series.last("loss") == (0, 3 * n - 1, 0.5)
    assert drawn[-1][0] >= (3 * n - 1) - group.width    # the x axis reaches the newest step


def test_buckets_coarsen_without_losing_the_envelope() -> None:
    b = Buckets()
    for step in range(5 * BUCKETS):
        b.add(step, float(step % 3))
    b.add(777, 42.0)
    assert b.width == 4 and len(b.cells) <= 2 * BUCKETS
    assert (776.0, 42.0) in b.points() and min(v for _, v in b.points()) == 0.0
    b.add(10 * BUCKETS, float("nan"))                # dropped, but it is the newest step
    assert b.last_step == 10 * BUCKETS and len(b.cells) <= 2 * BUCKETS


def test_home_data_on_a_fixed_clock(tmp_path: Path) -> None:
    from tests.tui.fixtures import write_store

    write_store(tmp_path / "home")
    source = DataSource(tmp_path / "home", no_gpu)
    data = source.home_data(NOW)
    rows = {r.name: r for r in data.runs}
    running = rows["scir-c"]
    # 2 of 4 iterations done (each stage 500 s), the third's training 120/300 in 720 s (longer
    # than before: its own rate, 1080 s more), then its evaluation and a whole iteration
    assert (running.iteration, running.elapsed) == (2, 7200.0)
    assert running.eta == 720 * 180 / 120 + 500 + 6 * 500
    # dpo-d (queued) is of a shape never run: no estimate, so no queue-wide ETA either
    assert rows["dpo-d"].eta is None and rows["dpo-d"].estimate is None
    assert (running.stage, running.stage_done, running.stage_total) == ("train", 120, 300)
    index = {g.uuid: g.index for g in data.gpus.gpus}
    assert gpu_text(running, index) == "0" and gpu_text(rows["dpo-d"], index) == "auto"
    assert rows["srlm-b"].stage_status == "failed" and rows["srlm-b"].eta is None
    assert rows["cream-a"].stage is None and rows["cream-a"].iteration == 3
    assert data.drained is False and len(data.gpus.gpus) == 2
    later = source.home_data(NOW + 60)
    assert {r.name: r for r in later.runs}["scir-c"].elapsed == 7260.0
    assert {r.name: r for r in later.runs}["cream-a"].elapsed == 9000.0   # ended: fixed


def test_missing_home_and_missing_run(tmp_path: Path) -> None:
    source = DataSource(tmp_path / "absent", no_gpu)
    assert source.home_data(NOW).problem == empty_message(tmp_path / "absent")
    assert source.run_data("x", NOW, 50).problem == empty_message(tmp_path / "absent")
    assert not (tmp_path / "absent").exists()
    open_store(tmp_path / "absent").close()
    assert "no such run" in source.run_data("x", NOW, 50).problem


def test_text_helpers() -> None:
    assert [fmt.duration(s) for s in (None, 5, 425, 10920, 190000)] == [
        "-", "5s", "7m05s", "3h02m", "2d04h"]
    assert fmt.sparkline([0, 50, 100, None], lo=0, hi=100) == "▁▅█ "
    assert fmt.sparkline([None]) == " "
    assert fmt.bar(0.5, 10) == "█████░░░░░" and fmt.bar(None, 3) == "░░░"
    assert fmt.na(None, "{:.0f}") == "N/A" and fmt.num(float("nan")) == "-"
    assert fmt.truncate("abcdefgh", 5) == "abcd…"


def test_the_seed_sfts_loss_is_charted_until_dpo_has_one(tmp_path: Path) -> None:
    """While the seed SFT trains (stage `sft`, metrics `sft/*`) the loss chart shows its curve
    under its own name; once DPO logs a loss, DPO's curve, whose x axis the SFT's steps never
    shift."""
    from tests.tui.fixtures import write_store

    write_store(tmp_path / "home")
    store = open_store(tmp_path / "home")
    run_id = store.list_runs()[0]["id"]
    store.execute("DELETE FROM metrics WHERE run_id = ?", [run_id])
    for step, value in ((1, 2.0), (2, 1.5), (3, 1.2)):
        store.log_metrics(run_id, 0, "sft", step, {"sft/loss": value})
    source = DataSource(tmp_path / "home", no_gpu)
    data = source.run_data(run_id, NOW, 50)
    assert data.loss_label == "seed SFT loss" and data.loss == ((1, 2.0), (2, 1.5), (3, 1.2))
    store.log_metrics(run_id, 0, "train", 1, {"loss": 0.69})
    data = source.run_data(run_id, NOW + 1, 50)
    assert data.loss_label == "loss" and data.loss == ((1, 0.69),)


async def test_the_home_screen_says_when_the_queue_should_be_done(tmp_path: Path) -> None:
    """A queued run of a shape that ran before (here: scir-c's config) is priced from it; the
    status line then gives when the running and the queued run should both be done."""
    from tests.tui.fixtures import RUNS, write_store
    from tests.tui.helpers import make_app, screen_text, wait_loaded

    home = tmp_path / "home"
    write_store(home)
    with contextlib.closing(open_store(home)) as store:
        store.execute("UPDATE runs SET config_toml = (SELECT config_toml FROM runs WHERE id = ?),"
                      " iterations = 4 WHERE id = ?", [RUNS.running, RUNS.queued])
        rows = {r.name: r for r in DataSource(home, no_gpu).home_data(NOW).runs}
        # scir-c never evaluated M0: priced like its other evaluations (500 s)
        assert rows["dpo-d"].estimate == 500 + 4 * 6 * 500
        store.execute("INSERT INTO stages (run_id, iteration, stage, status, started_at, "
                      "ended_at) VALUES (?, 0, 'baseline', 'done', 0, 300)", [RUNS.running])
    rows = {r.name: r for r in DataSource(home, no_gpu).home_data(NOW).runs}
    # M0's evaluation took 300 s, scir-c's other stages 500 s each: 4 iterations of 6
    assert rows["dpo-d"].estimate == 300 + 4 * 6 * 500
    app = make_app(home)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_loaded(pilot)
        # one slot: scir-c's 4580 s, then dpo-d's 12300 s: 4h41m
        assert "1 queued · all done in 4h41m · queue accepting jobs" in screen_text(app)
