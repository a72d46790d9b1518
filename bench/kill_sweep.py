"""SIGKILL sweep: kill a tiny run at random moments, re-run it each time, compare the end.

The run (bundled:tiny-random, 2 iterations of 8 prompts x 4 samples) is killed at random
moments and re-run until it finishes, then compared with an uninterrupted run of the same
config: pairs, every other artifact, the store's records, `PRAGMA integrity_check`,
duplicated metric rows. How the moments are drawn and what is compared:
tests/engine/kill_sweep.py.

    .venv/bin/python bench/kill_sweep.py [--kills 20] [--seed 0] [--eval both|on|off]
        [--home DIR]

Prints, per evaluation setting, each kill (target and where it landed), the kills per stage,
the times and the checks; exits 1 if any check fails. About 30 s for the reference run and
10-15 s per kill on two CPU cores.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.engine.kill_sweep import Kill, Report, run_sweep, tiny_model

STAGE_ORDER = ("startup", "baseline", "generate", "score", "consistency", "pairs", "train",
               "evaluate", "between stages", "end")


def stage_of(kill: Kill) -> str:
    if kill.landed.startswith("after "):
        return "between stages"
    return kill.landed.split("/")[-1]


def print_kill(kill: Kill) -> None:
    print(f"  kill {kill.attempt:>3}  target {kill.target:<20} landed {kill.landed:<22} "
          f"{kill.at:7.2f} s  {kill.note}", flush=True)


def print_report(report: Report) -> None:
    ref = report.reference
    setting = "on" if report.eval_on else "off"
    print(f"\nevaluation {setting}: reference run {ref.seconds:.1f} s "
          f"(startup {ref.segments[0].seconds:.1f} s, {len(ref.segments) - 2} stages)")
    print(f"  sweep: {report.attempts} runs, {len(report.kills)} kills, {report.seconds:.1f} s")
    per_stage = Counter(stage_of(k) for k in report.kills)
    print("  kills per stage: " + ", ".join(f"{s} {per_stage[s]}" for s in STAGE_ORDER
                                            if per_stage[s]))
    written = sum(1 for k in report.kills if k.note.startswith("artifact written"))
    if written:
        print(f"  kills after a stage's artifact was written, before it was marked done: "
              f"{written}")
    for check in report.checks:
        print(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name}"
              + (f": {check.detail}" if check.detail else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20, help="kills per evaluation setting")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--eval", choices=("on", "off", "both"), default="both",
                    help="evaluation stages on, off, or a sweep of each")
    ap.add_argument("--home", type=Path, default=None,
                    help="work folder (kept): the model, each setting's reference and swept "
                         "homes, the logs of every run [default: a temp folder, removed when "
                         "every check passes]")
    args = ap.parse_args()
    work = args.home.absolute() if args.home else Path(tempfile.mkdtemp(prefix="cream-sweep-"))
    started = time.time()
    model = tiny_model(work / "models-home")
    reports = []
    for eval_on in {"on": [True], "off": [False], "both": [True, False]}[args.eval]:
        print(f"evaluation {'on' if eval_on else 'off'}: reference run, then {args.kills} "
              f"kills (seed {args.seed}) in {work}", flush=True)
        reports.append(run_sweep(model, work, kills=args.kills, seed=args.seed,
                                 eval_on=eval_on, on_kill=print_kill))
    for report in reports:
        print_report(report)
    ok = all(r.ok for r in reports)
    print(f"\ntotal {time.time() - started:.1f} s; {'all checks passed' if ok else 'FAILED'}")
    if ok and args.home is None:
        shutil.rmtree(work, ignore_errors=True)
    elif not ok:
        print(f"logs and homes kept in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
