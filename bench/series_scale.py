"""What a run's charts cost the dashboard as the run grows: 1e4, 1e5 and 1e6 metric rows.

For each size a store is filled with one running run whose trainer logged `loss`,
`rewards/margins` and `rewards/accuracies` (and a fourth metric the charts do not draw) at every
step of three iterations. Then, through the dashboard's own `DataSource` (what the run screen
calls on each poll):

1. open: the CPU time of the first `run_data` (the charts' series read and downsampled to a
   100-cell chart), and the wall time;
2. per poll: a writer adds one step (four rows) before each poll, as a trainer logging every
   step does. A long series is first drawn from a sample of its steps and read exactly over
   the next polls (within 0.2 s each): how many polls that took and the most one cost; then
   the mean CPU time of `run_data` over the second half of the polls, which should not grow
   with the run.

    .venv/bin/python bench/series_scale.py [--sizes 10000,100000,1000000] [--polls 50]

Prints one line per size. Not a timed test: figures for the issue notes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cream_engine.config import from_dict, to_toml
from cream_engine.store import open_store
from cream_tui.data import DataSource

NAMES = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen")
ITERATIONS = 3
RUN = "20260101-000000-bench-0001"


def fill(home: Path, rows: int) -> int:
    """A running run with `rows` metric rows; the last step written."""
    store = open_store(home)
    config = to_toml(from_dict({"run": {"name": "bench", "method": "cream",
                                        "iterations": ITERATIONS}}))
    run_dir = home / RUN
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text(config)
    store.create_run(RUN, name="bench", method="cream", model="bundled:smollm2-135m-instruct",
                     iterations=ITERATIONS, run_dir=str(run_dir), config_toml=config)
    store.set_run_status(RUN, "running")
    steps = rows // len(NAMES) // ITERATIONS
    batch: list[tuple] = []
    for it in range(ITERATIONS):
        store.start_stage(RUN, it, "train", total_items=steps)
        for step in range(1, steps + 1):
            loss = 0.6931 * (1 - step / (steps * 2)) + 0.01 * ((step * 7919) % 13) / 13
            for name, value in zip(NAMES, (loss, 0.5 * step / steps, 0.5 + step / steps / 2,
                                           -loss)):
                batch.append((RUN, it, "train", step, name, value, 0.0))
            if len(batch) >= 50_000:
                store.executemany("INSERT INTO metrics (run_id, iteration, stage, step, name, "
                                  "value, time) VALUES (?,?,?,?,?,?,?)", batch)
                batch.clear()
        if it < ITERATIONS - 1:
            store.finish_stage(RUN, it, "train")
    if batch:
        store.executemany("INSERT INTO metrics (run_id, iteration, stage, step, name, value, "
                          "time) VALUES (?,?,?,?,?,?,?)", batch)
    store.close()
    return steps


def measure(rows: int, polls: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        step = fill(home, rows)
        source = DataSource(home, lambda: None)
        now = time.time()
        c0, w0 = time.process_time(), time.perf_counter()
        data = source.run_data(RUN, now, 100)
        open_cpu, open_wall = time.process_time() - c0, time.perf_counter() - w0
        assert data.run is not None and data.loss, "the chart read nothing"
        writer = open_store(home)
        spent: list[float] = []
        exact_after = None
        for poll in range(polls):
            step += 1
            writer.log_metrics(RUN, ITERATIONS - 1, "train", step,
                               dict(zip(NAMES, (0.3, 0.6, 0.9, -0.3))))
            c0 = time.process_time()
            data = source.run_data(RUN, now, 100)
            spent.append(time.process_time() - c0)
            if exact_after is None and not any(
                    g.coarse for g in source._series[RUN].groups.values()):
                exact_after = poll + 1
        assert data.last is not None and data.last[1] == step, "the poll missed the new step"
        writer.close()
        source.close()
        steady = spent[len(spent) // 2:]
        return (f"{rows:>9,} rows: open {open_cpu * 1000:6.0f} ms CPU ({open_wall * 1000:.0f} ms "
                f"wall), exact after {exact_after} polls (at most {max(spent) * 1000:.0f} ms "
                f"each), then per poll {sum(steady) / len(steady) * 1000:5.1f} ms CPU; "
                f"{len(data.loss)} loss points drawn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--polls", type=int, default=50)
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        print(measure(size, args.polls), flush=True)


if __name__ == "__main__":
    main()
