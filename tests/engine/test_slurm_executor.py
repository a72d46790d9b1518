"""The Slurm executor's parts that need no cluster: options from the user config, the batch
script, squeue's fields, the state mapping, and refusals when Slurm is not there. The real
cluster runs in tests/engine/test_slurm_runs.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cream_engine import queue
from cream_engine.errors import ConfigError, SlurmError
from cream_engine.executors import slurm
from cream_engine.executors.sbatch import SlurmOptions, batch_script
from cream_engine.store import Store
from tests.conftest import run_cli


def test_elapsed_and_states_from_squeue() -> None:
    assert [slurm.parse_elapsed(t) for t in ("0:00", "1:02", "1:02:03", "2-01:00:00",
                                              "INVALID")] == [0, 62, 3723, 176400, None]
    assert {s: slurm.status_of(s) for s in ("PENDING", "REQUEUED", "PREEMPTED", "RUNNING",
                                            "COMPLETING", "COMPLETED", "CANCELLED", "FAILED",
                                            "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")} == {
        "PENDING": "queued", "REQUEUED": "queued", "PREEMPTED": "queued",
        "RUNNING": "running", "COMPLETING": "running", "COMPLETED": "done",
        "CANCELLED": "cancelled", "FAILED": "failed", "TIMEOUT": "failed",
        "NODE_FAIL": "failed", "OUT_OF_MEMORY": "failed"}


def test_options_come_from_the_user_config_then_the_flags(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    user = tmp_path / "config.toml"
    user.write_text('[slurm]\npartition = "gpu"\naccount = "lab"\ntime = "4:00:00"\n'
                    'sbatch = ["--mem=64G"]\nsetup = "module load cuda"\n')
    monkeypatch.setenv("CREAM_USER_CONFIG", str(user))
    opts = SlurmOptions.from_user(partition="debug", gres="gpu:a100:4", nodes=None,
                                  sbatch=("--exclusive",))
    assert (opts.partition, opts.account, opts.time, opts.gres) == ("debug", "lab", "4:00:00",
                                                                   "gpu:a100:4")
    assert opts.sbatch == ("--mem=64G", "--exclusive") and opts.setup == ("module load cuda",)
    assert opts.gpus() == 4 and SlurmOptions(gres="gpu").gpus() == 1
    assert opts.resources() == ["--partition=debug", "--gres=gpu:a100:4", "--time=4:00:00",
                                "--account=lab", "--mem=64G", "--exclusive"]
    assert SlurmOptions.from_json(opts.to_json()) == opts
    assert SlurmOptions(nodes=2, gres="gpu:8").resources() == [  # a task per GPU per node
        "--gres=gpu:8", "--nodes=2", "--ntasks-per-node=8"]
    user.write_text('[slurm]\npartion = "gpu"\n')
    with pytest.raises(ConfigError, match=r"config.toml: \[slurm\] partion: unknown key"):
        SlurmOptions.from_user()
    user.write_text('[slurm]\nnodes = "two"\n')
    with pytest.raises(ConfigError, match=r"\[slurm\] nodes = 'two': must be an integer"):
        SlurmOptions.from_user()


def test_the_batch_script_is_valid_bash_with_requeue_and_the_warning(tmp_path: Path) -> None:
    run_dir = tmp_path / "a home" / "run-1"
    opts = SlurmOptions(partition="gpu", gres="gpu:8", setup=("echo set up",),
                        python="/opt/py env/bin/python")
    text = batch_script(run_dir, run_dir.parent, "my run", opts)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    for want in ("#SBATCH --requeue", "#SBATCH --signal=B:USR1@120",
                 "#SBATCH --open-mode=append", '#SBATCH --job-name="cream-my run"',
                 f'#SBATCH --output="{run_dir}/logs/job.log"', "#SBATCH --partition=gpu",
                 "#SBATCH --gres=gpu:8", "echo set up"):
        assert want in lines, want
    # #SBATCH lines come before any command (sbatch stops reading them at the first)
    first_command = next(i for i, ln in enumerate(lines[1:], 1) if not ln.startswith("#"))
    assert all(not ln.startswith("#SBATCH") for ln in lines[first_command:])
    assert "'/opt/py env/bin/python' -m cream_engine run" in text
    assert subprocess.run(["bash", "-n"], input=text, text=True, check=False).returncode == 0


def test_the_script_stops_the_engine_on_the_warning_and_requeues(tmp_path: Path) -> None:
    """The traps for real, with bash: USR1 -> SIGTERM to the engine, then `scontrol requeue`
    of this job (a stand-in scontrol on PATH records it); TERM -> SIGTERM, no requeue."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/scontrol.log\n')
    (bin_dir / "scontrol").chmod(0o755)
    engine = tmp_path / "engine.py"  # stands for the engine: reports the signal it got
    engine.write_text("import signal, sys, time\n"
                      "def stop(n, f):\n    print('engine got', signal.Signals(n).name, "
                      "flush=True)\n    sys.exit(143)\n"
                      "signal.signal(signal.SIGTERM, stop)\nprint('ready', flush=True)\n"
                      "time.sleep(60)\n")
    for sig, requeued in (("USR1", True), ("TERM", False)):
        script = batch_script(tmp_path / "run", tmp_path, "r", SlurmOptions(python="python3"))
        script = script.replace("python3 -m cream_engine run " + str(tmp_path / "run"),
                                f"python3 {engine}")
        (tmp_path / "scontrol.log").unlink(missing_ok=True)
        proc = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                                     "SLURM_JOB_ID": "77"})
        assert proc.stdout is not None
        while "ready" not in proc.stdout.readline():
            pass
        proc.send_signal(getattr(__import__("signal"), f"SIG{sig}"))
        out = proc.stdout.read()
        assert proc.wait(timeout=30) == 143
        assert "engine got SIGTERM" in out
        log = tmp_path / "scontrol.log"
        assert (log.read_text().split() if log.exists() else []) == \
            (["requeue", "77"] if requeued else [])


def _cfg(tmp_path: Path) -> Path:
    """(Refused before the config is read: any file does.)"""
    cfg = tmp_path / "exp.toml"
    cfg.write_text('[run]\nname = "s"\nmodel = "bundled:tiny-random"\n')
    return cfg


def test_submit_without_slurm_is_one_line_and_records_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = run_cli("submit", str(_cfg(tmp_path)), "--executor", "slurm", home=home,
                env={"PATH": str(Path(os.__file__).parent)})  # (no sbatch on this PATH)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == ("cream: error: Slurm is not installed here: "
                                                 "sbatch not found on PATH (submit from a "
                                                 "login node, or use the local worker)")
    assert not home.exists() or not [p for p in home.iterdir() if p.is_dir()
                                     and p.name != "models"]
    r = run_cli("submit", str(_cfg(tmp_path)), "--partition", "gpu", home=home)
    assert r.returncode == 2 and "--partition: a Slurm option; add --executor slurm" in r.stderr
    r = run_cli("submit", str(_cfg(tmp_path)), "--executor", "pbs", home=home)
    assert r.returncode == 2 and "--executor pbs: must be one of local, slurm" in r.stderr


def _slurm_job(store: Store, run_id: str = "r1", slurm_id: str = "41") -> dict:
    store.create_run(run_id, name=run_id, method="cream", model="m", iterations=1,
                     run_dir=f"/nonexistent/{run_id}", config_toml="")
    queue.add_slurm_job(store, run_id, slurm_id, SlurmOptions().to_json(), gpus=0)
    return queue.latest_job(store, run_id)


def test_slurm_jobs_are_never_claimed_by_the_local_worker(store: Store) -> None:
    _slurm_job(store)
    assert queue.claim_next_job(store, "w") is None
    assert not queue.has_queued(store) and queue.running_jobs(store) == []


def test_squeue_missing_shows_the_jobs_unknown_and_changes_nothing(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _slurm_job(store)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert slurm.sync(store, min_interval=0) == 1
    after = queue.latest_job(store, "r1")
    assert (after["status"], after["slurm_state"]) == ("queued", "UNKNOWN")
    assert "squeue not found on PATH" in after["slurm_reason"]
    assert slurm.where(after) == ("slurm 41 unknown (Slurm is not installed here: squeue not "
                                  "found on PATH)")
    assert store.get_run("r1")["status"] == "queued" and after["id"] == job["id"]
    # one query per interval, whoever asks
    assert slurm.sync(store, min_interval=60) == 0


def test_what_squeue_says_is_mirrored_onto_the_job_and_its_run(store: Store) -> None:
    job = _slurm_job(store)
    seen = slurm.SlurmJob("41", "PENDING", "Priority", None, 0)
    slurm.apply(store, job, seen, 100.0)
    job = queue.latest_job(store, "r1")
    assert (job["status"], job["slurm_reason"]) == ("queued", "Priority")
    assert slurm.where(job) == "slurm 41 pending (Priority)"
    slurm.apply(store, job, slurm.SlurmJob("41", "RUNNING", None, "node7", 65), 110.0)
    job = queue.latest_job(store, "r1")
    assert (job["status"], job["node"], job["attempts"], job["started_at"]) == \
        ("running", "node7", 1, 110.0)
    assert store.get_run("r1")["status"] == "running"
    # requeued: the engine had marked its run cancelled on SIGTERM; it lives on
    store.set_run_status("r1", "cancelled", error="cancelled (SIGTERM)")
    slurm.apply(store, job, slurm.SlurmJob("41", "PENDING", "BeginTime", None, 0), 120.0)
    job = queue.latest_job(store, "r1")
    assert job["status"] == "queued" and store.get_run("r1")["status"] == "queued"
    slurm.apply(store, job, slurm.SlurmJob("41", "TIMEOUT", "TimeLimit", "node7", 3600), 130)
    job = queue.latest_job(store, "r1")
    assert (job["status"], job["ended_at"]) == ("failed", 130)
    assert store.get_run("r1")["error"] == "Slurm: timeout (TimeLimit)"
    assert [e["kind"] for e in store.events("r1")][:3] == ["job.failed", "job.queued",
                                                          "job.running"]


def test_a_job_gone_from_squeue_takes_the_end_its_run_recorded(store: Store) -> None:
    job = _slurm_job(store)
    store.set_run_status("r1", "done")
    slurm.apply(store, job, None, 50.0)
    assert queue.latest_job(store, "r1")["status"] == "done"
    job = _slurm_job(store, "r2", "42")
    slurm.apply(store, job, None, 50.0)
    assert queue.latest_job(store, "r2")["status"] == "failed"
    assert store.get_run("r2")["error"] == "Slurm job 42 left the queue without a recorded end"


def test_slurm_error_is_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SlurmError, match="sbatch not found"):
        slurm.require_slurm()


def test_a_slurm_job_priority_is_slurms(store: Store) -> None:
    from cream_engine.errors import QueueError

    _slurm_job(store)
    with pytest.raises(QueueError, match="waits in Slurm's queue"):
        queue.set_priority(store, "r1", 5)


def test_a_job_purged_from_squeue_takes_its_end_from_sacct_where_accounting_runs(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """slurmdbd does not run here: stand-in squeue (the job no longer listed) and sacct (its
    rows as `sacct --parsable2` prints them, steps included) on PATH."""
    _slurm_job(store, "r1", "41")
    _slurm_job(store, "r2", "42")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sacct").write_text("#!/bin/sh\necho \"$@\" > " + str(tmp_path / "args") +
                                   "\nprintf '41|CANCELLED by 0|n3|00:01:10\\n41.batch|"
                                   "CANCELLED|n3|00:01:10\\n'\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert slurm.sync(store, min_interval=0) == 1
    assert "--jobs 41,42" in (tmp_path / "args").read_text()
    one, two = queue.latest_job(store, "r1"), queue.latest_job(store, "r2")
    assert (one["status"], one["slurm_state"], one["node"]) == ("cancelled", "CANCELLED", "n3")
    assert (two["status"], two["slurm_state"]) == ("failed", "GONE")   # sacct knew nothing
