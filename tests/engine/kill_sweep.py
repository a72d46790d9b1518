"""A SIGKILL sweep (issue 12): a tiny run killed at random moments and re-run each time must
end exactly as an uninterrupted run of the same config. Shared by
`tests/engine/test_kill_sweep.py` (a few kills) and `bench/kill_sweep.py` (many).

1. The reference: `cream run CONFIG` in a fresh home, uninterrupted. Its timeline is cut into
   segments: `startup` (the CLI and the engine importing torch, until the first stage starts),
   one per stage of each iteration, and `end` (after the last stage, until the process exits).
2. Kill targets, drawn from the seed: with at least as many kills as segments, one in every
   segment (so each stage gets one, however short) and the rest uniform over the reference's
   duration; with fewer, all uniform over its duration. A target is a segment and a fraction of
   the segment's reference duration; they are taken in timeline order.
3. The sweep: in another fresh home, `cream run CONFIG` (which resumes the newest unfinished
   run of the same config) in its own process group, SIGKILLed as a group (the CLI and the
   engine it spawned) at the target: `fraction × duration` after the target stage started in
   this attempt (seen in the store's stage rows; the watcher wakes on every write to the
   store's WAL, so a stage of a millisecond can still be hit). A target stage that finished in
   an earlier attempt is replaced by the first stage this attempt runs. Where the kill landed
   is read back from the store. Then once more without a kill, until the run is done.
4. The checks: the run is done; every iteration's pairs equal the reference's (parsed JSON, no
   field excluded); every other file of the run folder too (the evaluations without
   `seconds_by_part`, their wall times; binary files byte for byte, the checkpoints included);
   no file more or less (a temp file a killed writer left, a second copy); `PRAGMA
   integrity_check` ok; no two metric rows with one (run, iteration, stage, step, name); the
   metrics, stage and iteration records equal the reference's, timings left out; and no
   attempt ended by itself with an error or ran past its timeout.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cream_engine import paths
from cream_engine.config import from_dict, to_toml
from cream_engine.files import read_jsonl
from tests.engine.helpers import tiny_config

REPO = Path(__file__).resolve().parents[2]
# never compared: wall times, and what this process had to load (a resumed stage finds no
# model in memory where the uninterrupted run found the previous stage's)
TIME_KEYS = {"seconds", "seconds_per_step", "seconds_by_part", "seconds_saved", "models_loaded"}


@dataclass
class Segment:
    """A part of the reference run's timeline."""
    name: str             # "startup", "<t>/<stage>", "end"
    start: float          # seconds after the reference's spawn
    seconds: float


@dataclass
class Reference:
    home: Path
    run_dir: Path
    seconds: float
    segments: list[Segment]


@dataclass
class Kill:
    attempt: int
    target: str
    at: float             # seconds after this attempt's spawn
    landed: str           # "startup", "<t>/<stage>", "after <t>/<stage>", "end"
    note: str = ""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    eval_on: bool
    reference: Reference
    targets: list[str] = field(default_factory=list)  # "<segment> <fraction>", in order
    kills: list[Kill] = field(default_factory=list)
    attempts: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


# -- running `cream run` ---------------------------------------------------------------------


def write_config(work: Path, model_dir: Path, eval_on: bool) -> Path:
    path = work / f"sweep-eval-{'on' if eval_on else 'off'}.toml"
    path.write_text(to_toml(from_dict(tiny_config(model_dir, eval={"enabled": eval_on}))))
    return path


def cream_run(config: Path, home: Path, log: Path) -> subprocess.Popen:
    """`cream run CONFIG --home HOME` as the leader of a new process group, output to `log`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREAM_")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    home.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "cream_tui.cli", "run", str(config),
                                 "--home", str(home)], cwd=config.parent, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def connect(home: Path) -> sqlite3.Connection | None:
    """A plain reader of the home's store (never migrates or writes), once it exists."""
    if not paths.db_path(home).exists():
        return None
    conn = sqlite3.connect(paths.db_path(home), timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def rows(conn: sqlite3.Connection | None, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    """A query while the store may still be being created: nothing rather than an error."""
    if conn is None:
        return []
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.DatabaseError:  # no tables yet, or the file just created
        return []


def stage_rows(conn: sqlite3.Connection | None) -> dict[str, sqlite3.Row]:
    return {f"{r['iteration']}/{r['stage']}": r
            for r in rows(conn, "SELECT * FROM stages ORDER BY started_at")}


class StoreWatch:
    """Wakes up when a file of the home changes (the store's WAL on every commit), through
    Linux's inotify; elsewhere it simply sleeps."""

    def __init__(self, home: Path):
        self.fd = -1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0 and libc.inotify_add_watch(fd, str(home).encode(), 0x2 | 0x80 | 0x100) < 0:
                os.close(fd)  # (IN_MODIFY | IN_MOVED_TO | IN_CREATE)
                fd = -1
            self.fd = fd
        except (AttributeError, OSError):
            pass

    def wait(self, timeout: float) -> None:
        timeout = max(timeout, 0.0)
        if self.fd < 0:
            time.sleep(min(timeout, 0.005))
            return
        if select.select([self.fd], [], [], timeout)[0]:
            try:
                while os.read(self.fd, 65536):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


# -- 1. the reference --------------------------------------------------------------------------


def reference_run(config: Path, home: Path, logs: Path, timeout: float = 900) -> Reference:
    spawn = time.time()
    proc = cream_run(config, home, logs / "reference.log")
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise RuntimeError(f"the reference run took more than {timeout:.0f} s") from None
    end = time.time()
    if code != 0:
        raise RuntimeError(f"the reference run failed (exit {code}): see {logs}/reference.log")
    conn = connect(home)
    (run,) = rows(conn, "SELECT id FROM runs")
    stages = list(stage_rows(conn).items())
    conn.close()
    segments = [Segment("startup", 0.0, stages[0][1]["started_at"] - spawn)]
    segments += [Segment(name, r["started_at"] - spawn, r["ended_at"] - r["started_at"])
                 for name, r in stages]
    last = max(r["ended_at"] for _, r in stages) - spawn
    segments.append(Segment("end", last, end - spawn - last))
    return Reference(home, home / run["id"], end - spawn, segments)


# -- 2. kill targets ---------------------------------------------------------------------------


def draw_targets(ref: Reference, kills: int, rng: random.Random) -> list[tuple[Segment, float]]:
    """(segment, fraction of its duration) per kill, in timeline order."""
    targets = []
    if kills >= len(ref.segments):
        targets = [(s, rng.random()) for s in ref.segments]
    while len(targets) < kills:
        u = rng.uniform(0, ref.seconds)
        seg = next((s for s in reversed(ref.segments) if s.start <= u), ref.segments[0])
        fraction = min((u - seg.start) / seg.seconds, 1.0) if seg.seconds > 0 else 0.0
        targets.append((seg, fraction))  # (in a gap between two stages: at the earlier's end)
    order = {s.name: i for i, s in enumerate(ref.segments)}
    return sorted(targets, key=lambda x: (order[x[0].name], x[1]))


def target_label(target: tuple[Segment, float]) -> str:
    return f"{target[0].name} {target[1]:.0%}"


# -- 3. the sweep --------------------------------------------------------------------------------


def kill_moment(conn: sqlite3.Connection | None, ref: Reference, target: tuple[Segment, float],
                spawn: float) -> float | None:
    """When to kill this attempt (a time.time() value), or None: not known yet."""
    seg, fraction = target
    if seg.name == "startup":
        return spawn + fraction * seg.seconds
    stages = stage_rows(conn)
    expected = [s.name for s in ref.segments[1:-1]]
    if seg.name == "end":  # (all done before this attempt: left to end by itself)
        if all(n in stages and stages[n]["status"] == "done" for n in expected):
            last = max(stages[n]["ended_at"] for n in expected)
            return last + fraction * seg.seconds if last >= spawn else None
        return None
    row = stages.get(seg.name)
    if row is None:
        return None
    if row["started_at"] >= spawn:  # started in this attempt
        if row["status"] != "running":  # over before the moment: now
            return time.time()
        return row["started_at"] + fraction * seg.seconds
    if row["status"] != "done":  # left running by the last kill: wait until it starts again
        return None
    # finished in an earlier attempt: aim at the first stage this attempt runs instead
    ours = [(n, r) for n, r in stages.items() if r["started_at"] >= spawn]
    if not ours:
        return None
    name, first = ours[0]
    if first["status"] != "running":
        return time.time()
    duration = next(s.seconds for s in ref.segments if s.name == name)
    return first["started_at"] + fraction * duration


def landing(conn: sqlite3.Connection | None, ref: Reference, home: Path, spawn: float
            ) -> tuple[str, str]:
    """Where a kill landed, from the store: (segment, note)."""
    run = rows(conn, "SELECT id, status FROM runs")
    if not run:
        return "startup", "no run yet"
    note = "run already done" if run[0]["status"] == "done" else ""
    stages = stage_rows(conn)
    ours = [(n, r) for n, r in stages.items() if r["started_at"] >= spawn]
    running = [(n, r) for n, r in ours if r["status"] == "running"]
    if running:
        name, row = running[0]
        t, stage = name.split("/")
        artifact = paths.iter_dir(home / run[0]["id"], int(t)) / paths.ARTIFACTS[stage]
        if artifact.exists() and artifact.stat().st_mtime >= row["started_at"] - 0.01:
            note = "artifact written, stage not marked done"
        return name, note
    if not ours:
        return "startup", note
    expected = [s.name for s in ref.segments[1:-1]]
    if all(n in stages and stages[n]["status"] == "done" for n in expected):
        return "end", note
    return f"after {max(ours, key=lambda x: x[1]['ended_at'] or 0)[0]}", note


@dataclass
class Attempt:
    code: int | None      # the exit code, when it ended by itself
    kill: Kill | None = None
    timed_out: bool = False


def one_attempt(n: int, config: Path, home: Path, ref: Reference,
                target: tuple[Segment, float] | None, logs: Path, timeout: float) -> Attempt:
    """`cream run CONFIG` once: killed at `target`, or (None) left to end by itself."""
    spawn = time.time()
    proc = cream_run(config, home, logs / f"attempt-{n:02d}.log")
    watch, conn = StoreWatch(home), None
    try:
        while proc.poll() is None:
            if time.time() - spawn > timeout:
                kill_group(proc)
                return Attempt(None, timed_out=True)
            conn = conn or connect(home)
            when = kill_moment(conn, ref, target, spawn) if target else None
            if when is not None and time.time() >= when:
                kill_group(proc)
                if proc.returncode != -signal.SIGKILL:  # it had just ended by itself
                    break
                where, note = landing(conn, ref, home, spawn)
                return Attempt(None, Kill(n, target_label(target), time.time() - spawn, where,
                                          note))
            watch.wait(0.05 if when is None else min(0.05, when - time.time()))
        return Attempt(proc.returncode)
    finally:
        watch.close()
        if conn is not None:
            conn.close()


def sweep(config: Path, home: Path, ref: Reference, targets: list[tuple[Segment, float]],
          logs: Path, on_kill: Callable[[Kill], None] | None = None
          ) -> tuple[list[Kill], int, list[str]]:
    """Kill `cream run` at each target in turn, then let it finish: (kills, attempts,
    errors)."""
    timeout = max(120.0, 10 * ref.seconds)
    kills: list[Kill] = []
    errors: list[str] = []
    n = 0
    for target in [*targets, None]:
        n += 1
        result = one_attempt(n, config, home, ref, target, logs, timeout)
        if result.timed_out:
            errors.append(f"attempt {n}: still running after {timeout:.0f} s (killed)")
            break
        if result.kill is not None:
            kills.append(result.kill)
            if on_kill is not None:
                on_kill(result.kill)
            if result.kill.note == "run already done":
                break
            continue
        if result.code == 0:
            break  # the run is done
        errors.append(f"attempt {n}: exit {result.code} (log: {logs}/attempt-{n:02d}.log)")
    return kills, n, errors


# -- 4. the checks -------------------------------------------------------------------------------


def untimed(value: object) -> object:
    """A record without its wall times."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIME_KEYS}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def content(path: Path) -> object:
    """What is compared of a file: JSON parsed (an evaluation without its timings), the
    rest byte for byte."""
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    if path.name in (paths.ARTIFACTS["evaluate"], paths.ARTIFACTS["baseline"]):
        return untimed(json.loads(path.read_text()))
    return path.read_bytes()


def files(run_dir: Path) -> dict[str, Path]:
    return {str(p.relative_to(run_dir)): p for p in sorted(run_dir.rglob("*")) if p.is_file()}


def is_evaluation(name: str) -> bool:
    parts = Path(name).parts
    return parts[-1] in (paths.ARTIFACTS["evaluate"], paths.ARTIFACTS["baseline"]) \
        or (len(parts) > 2 and parts[-2] in ("eval", paths.BASELINE))


def compare(ref: Reference, home: Path) -> list[Check]:
    conn = connect(home)
    runs = conn.execute("SELECT id, status, error FROM runs").fetchall() if conn else []
    checks = [Check("one run, done", len(runs) == 1 and runs[0]["status"] == "done",
                    "; ".join(f"{r['id']} {r['status']} {r['error'] or ''}" for r in runs))]
    if runs:
        theirs = connect(ref.home)
        checks += store_checks(conn, runs[0]["id"], theirs, ref.run_dir.name)
        theirs.close()
        checks += file_checks(home / runs[0]["id"], ref.run_dir)
    if conn is not None:
        conn.close()
    return checks


def store_checks(conn: sqlite3.Connection, run_id: str, theirs: sqlite3.Connection,
                 ref_id: str) -> list[Check]:
    integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    dups = conn.execute("SELECT iteration, stage, step, name, COUNT(*) AS n FROM metrics WHERE "
                        "run_id = ? GROUP BY iteration, stage, step, name HAVING n > 1",
                        (run_id,)).fetchall()
    q = ("SELECT iteration, stage, step, name, value FROM metrics WHERE run_id = ? "
         "ORDER BY iteration, stage, step, name, value")
    mine, want = (list(map(tuple, c.execute(q, (i,)))) for c, i in ((conn, run_id),
                                                                    (theirs, ref_id)))
    first = next((a, b) for a, b in zip([*mine, None], [*want, None]) if a != b) \
        if mine != want else None
    ours, reference = records(conn, run_id), records(theirs, ref_id)
    differ = sorted(k for k in ours.keys() | reference.keys() if ours.get(k) != reference.get(k))
    return [
        Check("PRAGMA integrity_check = ok", integrity == ["ok"], "; ".join(integrity)),
        Check("no duplicated metric rows (run, iteration, stage, step, name)", not dups,
              ", ".join(f"{d['iteration']}/{d['stage']} step {d['step']} {d['name']} "
                        f"x{d['n']}" for d in dups)),
        Check("metric rows equal the reference's (their time left out)", first is None,
              f"{len(mine)} rows, reference {len(want)}; first difference {first}" if first
              else f"{len(mine)} rows"),
        Check("stage and iteration records equal the reference's (timings left out)",
              not differ, ", ".join(differ))]


def records(conn: sqlite3.Connection, run_id: str) -> dict[str, object]:
    """A run's stage and iteration rows, without their timings."""
    out: dict[str, object] = {}
    for r in conn.execute("SELECT * FROM stages WHERE run_id = ?", (run_id,)):
        out[f"stage {r['iteration']}/{r['stage']}"] = (
            r["status"], r["done_items"], r["total_items"],
            untimed(json.loads(r["info"]) if r["info"] else None))
    for r in map(dict, conn.execute("SELECT * FROM iterations WHERE run_id = ?", (run_id,))):
        r["summary"] = json.loads(r["summary"]) if r["summary"] else None
        out[f"iteration {r['iteration']}"] = untimed(
            {k: v for k, v in r.items() if k not in ("run_id", "started_at", "ended_at")})
    return out


def file_checks(run_dir: Path, ref_dir: Path) -> list[Check]:
    ours, theirs = files(run_dir), files(ref_dir)
    extra, missing = sorted(ours.keys() - theirs), sorted(theirs.keys() - ours)
    # beside the run folder, only the store (a kill inside `create_run` could leave a folder)
    # and the cache of M0's evaluation: the same entries as the reference's, no temp left
    extra += [p.name for p in run_dir.parent.iterdir()
              if p != run_dir and not p.name.startswith(paths.DB_NAME) and p.name != "cache"]
    cached = {str(p.relative_to(run_dir.parent)) for p in (run_dir.parent / "cache").rglob("*")}
    ref_cached = {str(p.relative_to(ref_dir.parent))
                  for p in (ref_dir.parent / "cache").rglob("*")}
    extra += sorted(cached - ref_cached)
    missing += sorted(ref_cached - cached)
    checks = [Check("the same files as the reference (no temp file, copy or stray run folder)",
                    not extra and not missing, f"extra {extra[:6]} missing {missing[:6]}"
                    if extra or missing else f"{len(ours)} files")]
    groups: dict[str, list[str]] = {"pairs": [], "evaluation": [], "other": []}
    for name in sorted(ours.keys() & theirs):
        kind = ("pairs" if Path(name).name == paths.ARTIFACTS["pairs"] else
                "evaluation" if is_evaluation(name) else "other")
        groups[kind].append(name)
    titles = {"pairs": "every iteration's pairs equal the reference's (parsed, all fields)",
              "evaluation": "evaluation artifacts equal the reference's (seconds_by_part "
                            "left out)",
              "other": "every other file equals the reference's (JSONL parsed, checkpoints "
                       "byte for byte)"}
    for kind, names in groups.items():
        if kind == "evaluation" and not any(is_evaluation(n) for n in theirs):
            continue  # evaluation off
        differ = [n for n in names if content(ours[n]) != content(theirs[n])]
        checks.append(Check(titles[kind], bool(names) and not differ,
                            f"differ: {differ}" if differ else f"{len(names)} files"))
    return checks


# -- the whole sweep ---------------------------------------------------------------------------


def tiny_model(home: Path) -> Path:
    """bundled:tiny-random built under `home` (in a child: this process stays light)."""
    out = subprocess.run([sys.executable, "-m", "cream_engine", "--home", str(home),
                          "prepare-model", "bundled:tiny-random"], capture_output=True,
                         text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return Path(out.stdout.strip().splitlines()[-1])


def run_sweep(model_dir: Path, work: Path, *, kills: int, seed: int, eval_on: bool,
              on_kill: Callable[[Kill], None] | None = None) -> Report:
    """The reference, `kills` kills with a re-run after each, a last run to the end, the
    checks. Everything under `work/eval-on|off/`: reference/ and swept/ (homes), logs/."""
    work = work / f"eval-{'on' if eval_on else 'off'}"
    work.mkdir(parents=True, exist_ok=True)
    config, logs = write_config(work, model_dir, eval_on), work / "logs"
    report = Report(eval_on, reference_run(config, work / "reference", logs))
    targets = draw_targets(report.reference, kills, random.Random(seed))
    report.targets = [target_label(t) for t in targets]
    started = time.time()
    report.kills, report.attempts, report.errors = sweep(
        config, work / "swept", report.reference, targets, logs, on_kill)
    report.seconds = time.time() - started
    report.checks = compare(report.reference, work / "swept")
    report.checks.append(Check("every attempt ended by a kill or with exit 0, in time",
                               not report.errors, "; ".join(report.errors)))
    return report
