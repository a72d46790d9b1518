"""The `slurm_cluster` fixture itself (tests/slurm_cluster.py): a real private Slurm cluster
runs a batch job and reports it, survives a controller restart, and stops leaving no daemon or
job process alive."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.slurm_cluster import SlurmCluster, _alive, unavailable_reason


def test_batch_job_runs_and_is_reported(slurm_cluster):
    c = slurm_cluster
    job = c.sbatch("-J", "fixture-ok", "-o", "ok-%j.out", "--wrap", "echo hello from $SLURM_JOB_ID")
    assert job.isdigit()
    fields = c.wait_job(job, timeout=60)
    assert fields["JobState"] == "COMPLETED" and fields["ExitCode"] == "0:0"
    assert fields["NodeList"] == c.node and fields["Partition"] == "debug"
    assert (c.jobs_dir / f"ok-{job}.out").read_text().strip() == f"hello from {job}"
    out = c.run("squeue", "-h", "--states=all", "-j", job, "-o", "%i|%T|%P|%j", check=True)
    assert out.stdout.strip() == f"{job}|COMPLETED|debug|fixture-ok"

    failed = c.sbatch("-p", "long", "--wrap", "exit 3")
    fields = c.wait_job(failed, timeout=60)
    assert (fields["JobState"], fields["ExitCode"], fields["Partition"]) == ("FAILED", "3:0", "long")


@pytest.mark.slow
def test_controller_restart_keeps_jobs(slurm_cluster):
    c = slurm_cluster
    job = c.sbatch("--wrap", "true")
    c.wait_job(job, timeout=60)
    c.stop_slurmctld()
    try:
        t0 = time.monotonic()
        down = c.run("squeue", "-h", "--states=all", "-o", "%i|%T")
        blocked = time.monotonic() - t0
        assert down.returncode != 0
        assert "Unable to contact slurm controller" in down.stderr
        assert blocked < c.message_timeout + 5
    finally:
        c.start_slurmctld()
    out = c.run("squeue", "-h", "--states=all", "-j", job, "-o", "%i|%T", check=True)
    assert out.stdout.strip() == f"{job}|COMPLETED"
    c.wait_job(c.sbatch("--wrap", "true"), timeout=60)   # and it schedules again


@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
def test_stop_leaves_no_process(tmp_path):
    """A second, private cluster (own ports, own munged) alongside the session's one: stop()
    ends its daemons and a still-running job, including a child that ignores SIGTERM."""
    c = SlurmCluster(tmp_path / "c2").start()
    try:
        assert c.started_s < 30
        job = c.sbatch("--wrap", "trap '' TERM; sleep 300 & sleep 300; wait")
        c.wait_job(job, states=("RUNNING",), timeout=60)
        deadline = time.monotonic() + 10
        while len(c.job_pids()) < 3 and time.monotonic() < deadline:  # stepd, shell, sleeps
            time.sleep(0.1)
        pids = c.daemon_pids() + c.job_pids()
        assert len(pids) >= 6, pids
    finally:
        c.stop(grace=1)
    alive = [p for p in pids if _alive(p)]
    assert alive == [], [Path(f"/proc/{p}/cmdline").read_text() for p in alive]
    assert c.procs == {} and c.munged_pid is None
    assert c.run("scontrol", "ping").returncode != 0    # answers "DOWN" at once
