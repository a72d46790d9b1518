"""A data home written by the code before the stages were renamed and the worker moved
(`tests/fixtures/v0-home.tar.gz`, made at commit 05df2a1 by `make_v0_home.py`, then copied
from another machine's folder) opens, compares, and its SIGKILLed run resumes to the end
without redoing a finished stage."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from cream_engine.files import read_jsonl
from cream_engine.schema import applied_migrations
from cream_engine.store import open_store
from tests.conftest import REPO, run_cli

FIXTURE = REPO / "tests" / "fixtures" / "v0-home.tar.gz"
DONE, PART = "20261129-121747-legacy-cream-f373", "20261129-121813-legacy-srlm-c2a7"


@pytest.fixture
def old_home(tmp_path: Path, tiny_model_dir: Path) -> Path:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    home = tmp_path / "home"
    (home / "models").mkdir()
    (home / "models" / "tiny-random").symlink_to(tiny_model_dir)  # the same seeded model
    return home


def test_an_old_home_opens_and_compares(old_home: Path) -> None:
    rows = json.loads(run_cli("status", "--json", home=old_home).stdout)
    assert {r["id"]: r["status"] for r in rows} == {DONE: "done", PART: "running"}
    done = {r["id"]: r for r in rows}[DONE]
    assert done["iteration"] == 2 and done["run_dir"] == str(old_home / DONE)
    store = open_store(old_home)
    assert applied_migrations(store.conn)[-1] == "m004_executors"
    stages = {(s["iteration"], s["stage"]) for s in store.stages(DONE)}
    assert (0, "score") in stages and (0, "reward") not in stages
    assert "score" in json.loads(store.iterations(DONE)[0]["summary"])
    r = run_cli("compare", "legacy-cream", "legacy-srlm", "--json", home=old_home)
    assert r.returncode == 0, r.stderr
    models = [(row["run"], row["model"]) for row in json.loads(r.stdout)["rows"]]
    assert models == [(DONE, "M0"), (DONE, "M1"), (DONE, "M2"), (PART, "M0"), (PART, "M1")]
    r = run_cli("logs", "legacy-cream", "-n", "1", home=old_home)
    assert r.returncode == 0 and "done" in r.stdout


def test_two_processes_upgrading_at_once_both_open_it(old_home: Path) -> None:
    """The first takes the store's write lock to migrate; the second waits, then finds the
    schema current (before, it ran m003 again and failed on the migrations table)."""
    import subprocess
    import sys

    code = f"from cream_engine.store import open_store; open_store({str(old_home)!r}).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    store = open_store(old_home)
    assert applied_migrations(store.conn) == ["m001_initial", "m002_queue", "m003_stage_names",
                                           "m004_executors"]


def test_the_sigkilled_run_resumes_where_it_stopped(old_home: Path) -> None:
    store = open_store(old_home)
    before = {(s["iteration"], s["stage"]): s for s in store.stages(PART)}
    assert before[(0, "consistency")]["status"] == "done"
    assert before[(0, "pairs")]["status"] == "running"     # the kill landed here
    r = run_cli("worker", "run", "--once", home=old_home, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "re-queued job" in r.stderr                       # its worker had died
    assert store.get_run(PART)["status"] == "done"
    after = {(s["iteration"], s["stage"]): s for s in store.stages(PART)}
    for key in ((0, "baseline"), (0, "generate"), (0, "score"), (0, "consistency")):
        assert after[key]["started_at"] == before[key]["started_at"], key   # not redone
    assert all(s["status"] == "done" for s in after.values())
    assert {t for t, _ in after} == {0, 1}
    run_dir = old_home / PART
    for t in (0, 1):
        names = {p.name for p in (run_dir / f"iter-{t}").iterdir()}
        assert {"scores.jsonl", "consistency.jsonl", "pairs.jsonl", "model"} <= names
        assert "rewards.jsonl" not in names
    # iteration 0's pairs were built from the renamed artifact of the old consistency stage
    consistency = {r["prompt_id"]: r for r in read_jsonl(run_dir / "iter-0" /
                                                        "consistency.jsonl")}
    pairs = read_jsonl(run_dir / "iter-0" / "pairs.jsonl")
    assert pairs and all(p["prompt_id"] in consistency for p in pairs)
    status = json.loads(run_cli("status", PART, "--json", home=old_home).stdout)
    assert status["iteration"] == 2
    workers = {w["id"]: w["status"] for w in store.query("SELECT id, status FROM workers")}
    assert list(workers.values()).count("gone") == 1       # the SIGKILLed one
