"""How much CPU the dashboard uses while it polls, and how soon a new point shows.

Runs the real `cream tui` in tmux against a store filled like the tests' (five runs, ~14,000
metric rows, two GPUs sampled), while a writer thread streams 10 metric rows a second into the
running run (one `loss` row per step, as a trainer logging every step would, plus the stage's
progress once a second). Measured:

1. the dashboard process's CPU time (utime + stime from /proc) over a window, as a percentage
   of one core: on the run screen (charts redrawn as points arrive) and on the home screen;
2. the latency from writing a row to its point being on screen: the run screen's summary
   line names the newest step (`it2 step N`); read with `tmux capture-pane` every 50 ms, each
   step up to N counts as shown from the first capture that names N or later.

    .venv/bin/python bench/tui_idle.py [--seconds 30] [--poll 1.0]

Targets (issue 6): under 5% of one core, new points within 2 s. Not a timed test.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cream_engine.store import open_store
from tests.tui.fixtures import RUNS, write_store

STEP = re.compile(r"it2 step (\d+) loss")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS     # utime + stime


class Tmux:
    def __init__(self, tmux: str, env: dict[str, str]):
        self.base = [tmux, "-u", "-L", f"cream-bench-{os.getpid()}", "-f", "/dev/null"]
        self.env = env

    def __call__(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], env=self.env, capture_output=True,
                              text=True, timeout=30, check=False).stdout

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        while text not in self("capture-pane", "-p", "-t", "bench"):
            if time.time() > deadline:
                raise SystemExit(f"the dashboard never showed {text!r}")
            time.sleep(0.1)


class Writer(threading.Thread):
    """10 metric rows a second into the running run; remembers when each step was written."""

    def __init__(self, home: Path, rate: float = 10.0):
        super().__init__(daemon=True)
        self.home, self.period = home, 1.0 / rate
        self.written: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        store = open_store(self.home)
        step, last_progress = 120, 0.0
        next_at = time.monotonic()
        while not self.stop.is_set():
            step += 1
            store.log_metrics(RUNS.running, 2, "train", step, {"loss": 0.3 + 0.1 / step})
            self.written[step] = time.monotonic()
            if time.monotonic() - last_progress >= 1.0:     # what StageProgress does
                store.stage_progress(RUNS.running, 2, "train", min(step, 300), max(step, 300))
                last_progress = time.monotonic()
            next_at += self.period
            self.stop.wait(max(next_at - time.monotonic(), 0))
        store.close()


def measure(tmux: Tmux, pid: int, writer: Writer, seconds: float,
            latencies: list[float] | None) -> float:
    """CPU % of one core over `seconds`; collects latencies while at it (run screen)."""
    seen = 0
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    while time.monotonic() - t0 < seconds:
        if latencies is not None:
            match = STEP.search(tmux("capture-pane", "-p", "-t", "bench"))
            now = time.monotonic()
            shown = int(match.group(1)) if match else 0
            if shown > seen:
                # every step written since the last change is on screen now (as part of the
                # curve; the summary names the newest): each waited this long
                if seen:
                    latencies += [now - writer.written[s] for s in range(seen + 1, shown + 1)
                                  if s in writer.written]
                seen = shown
        time.sleep(0.05)
    return 100 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="each measuring window")
    parser.add_argument("--poll", type=float, default=1.0, help="the dashboard's poll interval")
    args = parser.parse_args()
    tmux_bin = shutil.which("tmux")
    if tmux_bin is None:
        raise SystemExit("bench/tui_idle.py needs tmux (apt-get install -y tmux)")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        write_store(home, now=time.time())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CREAM_", "TMUX"))}
        env.update(TERM="xterm-256color", LANG="C.UTF-8", COLORTERM="truecolor")
        tmux = Tmux(tmux_bin, env)
        command = (f"exec env CREAM_HOME={shlex.quote(str(home))} "
                   f"CREAM_TUI_POLL_S={args.poll} {shlex.quote(sys.executable)} "
                   f"-m cream_tui.cli tui --run {RUNS.running}")
        tmux("new-session", "-d", "-s", "bench", "-x", "120", "-y", "40", command)
        try:
            tmux.wait_for("DPO loss")
            pid = int(tmux("display-message", "-p", "-t", "bench", "#{pane_pid}").strip())
            writer = Writer(home)
            writer.start()
            time.sleep(5)                                     # warm up
            latencies: list[float] = []
            run_cpu = measure(tmux, pid, writer, args.seconds, latencies)
            tmux("send-keys", "-t", "bench", "Escape")
            tmux.wait_for("queue accepting jobs")
            time.sleep(2)
            home_cpu = measure(tmux, pid, writer, args.seconds, None)
            writer.stop.set()
            time.sleep(2)
            quiet_cpu = measure(tmux, pid, writer, args.seconds, None)
        finally:
            tmux("kill-server")
    print(f"dashboard CPU, run screen, 10 rows/s streaming : {run_cpu:5.1f}% of one core "
          f"(target < 5%)")
    print(f"dashboard CPU, home screen, 10 rows/s streaming: {home_cpu:5.1f}% of one core")
    print(f"dashboard CPU, home screen, nothing changing   : {quiet_cpu:5.1f}% of one core")
    if latencies:
        print(f"new point on screen after: median {statistics.median(latencies):.2f} s, "
              f"max {max(latencies):.2f} s over {len(latencies)} points (target < 2 s; "
              f"poll every {args.poll:g} s)")
    else:
        print("new point on screen: never seen (the dashboard did not update)")


if __name__ == "__main__":
    main()
