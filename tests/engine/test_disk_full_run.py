"""A disk that fills up in the middle of a run (a real tmpfs with a ballast file: the store and
the first stages fit, the checkpoint does not): one line naming the path and what to free,
exit 1, the traceback in the job log only; the store and the finished artifacts intact; once
the ballast is gone, the same command resumes the run without redoing a finished stage."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cream_engine import paths
from cream_engine.config import from_dict, to_toml
from cream_engine.files import read_jsonl
from cream_engine.store import open_store
from tests.conftest import run_cli
from tests.engine.helpers import tiny_config
from tests.fsfaults import modes, snapshot

FINISHED = ("generate", "score", "consistency", "pairs")


@pytest.mark.slow  # (a whole tiny run, twice: about 35 s)
def test_a_full_disk_mid_run_is_one_line_and_the_run_resumes(
        tmpfs, tmp_path: Path, tiny_model_dir: Path) -> None:
    disk = tmpfs("24m")
    home = disk.path / "home"
    ballast = disk.path / "ballast"
    ballast.write_bytes(b"\0" * (20 << 20))  # 4 MB left; the checkpoint alone is 13 MB
    config = tmp_path / "exp.toml"
    config.write_text(to_toml(from_dict(tiny_config(  # (one short iteration: about a minute)
        tiny_model_dir, run={"iterations": 1}, data={"prompts_per_iteration": 4},
        generate={"n": 2, "max_new_tokens": 8}, eval={"enabled": False}))))

    r = run_cli("run", str(config), home=home, timeout=600)
    run_id = r.stdout.strip().splitlines()[-1]
    run_dir = home / run_id
    reason = (f"{home}: no space left on device (free space on that disk, then run the same "
              "command again: finished work is kept)")
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stdout + r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"cream: error: run {run_id} failed: {reason}"
    log = paths.job_log(run_dir).read_text()
    assert log.count("Traceback (most recent call last)") == 1
    assert "No space left on device" in log

    with sqlite3.connect(f"file:{home / 'cream.db'}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = open_store(home)
    assert store.get_run(run_id)["status"] == "failed"
    assert store.get_run(run_id)["error"] == reason
    assert {s["stage"]: s["status"] for s in store.stages(run_id)} == \
        {**dict.fromkeys(FINISHED, "done"), "train": "failed"}
    store.close()
    iter_dir = run_dir / "iter-0"
    finished = {name: snapshot(iter_dir)[name] for name in
                (paths.ARTIFACTS[stage] for stage in FINISHED)}
    assert all(read_jsonl(iter_dir / name) for name in finished)
    assert not (iter_dir / "model").exists() and not list(iter_dir.glob(".model.*"))

    ballast.unlink()
    r = run_cli("run", str(config), home=home, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resuming run {run_id} (was failed)" in r.stderr
    assert r.stdout.strip().splitlines()[-1] == run_id
    assert {name: snapshot(iter_dir)[name] for name in finished} == finished  # not redone
    assert (iter_dir / "model" / "model.safetensors").is_file()
    assert open_store(home).get_run(run_id)["status"] == "done"
    # the engine and what it wrote (by torch, safetensors, tokenizers) are private too
    assert [f"{n} {m}" for n, m in modes(home).items()
            if m != ("0o700" if (home / n).is_dir() else "0o600")] == []
