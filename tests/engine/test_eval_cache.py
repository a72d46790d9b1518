"""Evaluation cost: M0's baseline computed once per home and copied by the next run with the
same model and settings (a changed setting or a damaged entry misses), `[eval] every = k`,
and evaluation's greedy generation in one backend call per set."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from cream_engine import paths
from cream_engine.config import from_dict
from cream_engine.context import RunContext
from cream_engine.files import read_jsonl
from cream_engine.pipeline import run_stage, stages_of
from cream_engine.stages import evaluate
from cream_engine.store import open_store
from tests.engine.helpers import new_run, tiny_config


def baseline_of(home: Path, model_dir: Path, name: str, **eval_settings
                ) -> tuple[dict, dict, Path]:
    """A new run's baseline stage, in process: (its artifact, its stage info, its folder)."""
    config = tiny_config(model_dir, run={"name": name, "iterations": 1},
                         eval={"max_items": 3, "max_new_tokens": 8, "win_rate_prompts": 3,
                               **eval_settings})
    run = new_run(home, config)
    store = open_store(home)
    ctx = RunContext.open(run, store)
    run_stage(ctx, 0, paths.BASELINE, evaluate.baseline)
    row = next(s for s in store.stages(run.name) if s["stage"] == paths.BASELINE)
    artifact = json.loads(ctx.artifact(0, paths.BASELINE).read_text())
    return artifact, json.loads(row["info"]), run


def details(run: Path) -> dict[str, list[dict]]:
    folder = run / "iter-0" / "baseline"
    return {p.name: read_jsonl(p) for p in sorted(folder.glob("*.jsonl"))}


def test_second_run_copies_the_baseline_and_a_changed_setting_misses(
        home: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cream_engine.backends.hf import HFBackend

    calls: list[int] = []
    generate = HFBackend.generate

    def counted(self, conversations, **kw):
        calls.append(len(conversations))
        return generate(self, conversations, **kw)

    monkeypatch.setattr(HFBackend, "generate", counted)
    first, first_info, run1 = baseline_of(home, tiny_model_dir, "a")
    assert first_info["cache"] == "stored"
    # evaluation generates each set's answers, and the held-out replies, in one call each
    sets = first["sets"]
    assert calls == [n["n"] for n in sets.values()] + [3]

    calls.clear()
    second, second_info, run2 = baseline_of(home, tiny_model_dir, "b")
    assert calls == []  # nothing generated: copied
    assert second_info["cache"] == "hit" and second_info["cache_key"] == first_info["cache_key"]
    assert second_info["seconds_saved"] > 0
    assert second == first  # the artifact as computed (where it came from: the stage info)
    assert details(run2) == details(run1) and details(run2)  # M1's win rate reads these
    # the metrics are in the store as if computed
    metrics = {m["name"]: m["value"] for m in open_store(home).metric_rows(run2.name)
               if m["stage"] == paths.BASELINE}
    assert metrics == pytest.approx(evaluate.metric_values(first))

    _, changed_info, _ = baseline_of(home, tiny_model_dir, "c", max_new_tokens=9)
    assert changed_info["cache"] == "stored" and calls  # computed again
    assert changed_info["cache_key"] != first_info["cache_key"]


def test_a_damaged_entry_is_ignored_and_written_again(home: Path, tiny_model_dir: Path) -> None:
    _, info, _ = baseline_of(home, tiny_model_dir, "a", generative=False)
    entry = paths.eval_cache_dir(home) / info["cache_key"]
    held = entry / "baseline" / "heldout.jsonl"
    held.write_text(held.read_text().replace("reply", "rep1y", 1))  # not what was hashed
    _, again, _ = baseline_of(home, tiny_model_dir, "b", generative=False)
    assert again["cache"] == "stored"  # recomputed, and the entry replaced
    (entry / "entry.json").write_text("{")  # half a file: ignored too
    _, third, _ = baseline_of(home, tiny_model_dir, "c", generative=False)
    assert third["cache"] == "stored"
    _, fourth, _ = baseline_of(home, tiny_model_dir, "d", generative=False)
    assert fourth["cache"] == "hit"


def test_a_resumed_run_reads_its_own_entry_back_as_computed(home: Path,
                                                           tiny_model_dir: Path) -> None:
    # killed after the entry was kept, before the stage was marked done: the resumed stage
    # copies it back and says "stored", as the uninterrupted run would (the kill sweep
    # compares the two)
    first, _, run = baseline_of(home, tiny_model_dir, "a", generative=False)
    (run / "iter-0" / "baseline.json").unlink()
    store = open_store(home)
    run_stage(RunContext.open(run, store), 0, paths.BASELINE, evaluate.baseline)
    row = next(s for s in store.stages(run.name) if s["stage"] == paths.BASELINE)
    assert json.loads(row["info"])["cache"] == "stored"
    assert json.loads((run / "iter-0" / "baseline.json").read_text()) == first


def test_model_digest_is_remembered_by_size_and_mtime(home: Path, tmp_path: Path) -> None:
    from cream_engine.stages.evalcache import model_digest

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 100)
    first = model_digest(str(folder), home)
    assert model_digest(str(folder), home) == first
    assert len(list(paths.digests_dir(home).glob("*.json"))) == 1
    (folder / "model.safetensors").write_bytes(b"\1" * 100)  # new content, new mtime
    assert model_digest(str(folder), home) != first


@pytest.mark.parametrize("every, iterations, evaluated", [
    (1, 3, [0, 1, 2]),
    (2, 3, [1, 2]),      # M2 ((t + 1) % 2 == 0) and M3, the last
    (2, 4, [1, 3]),
    (5, 3, [2]),         # only the last
])
def test_eval_every_k_iterations(every: int, iterations: int, evaluated: list[int]) -> None:
    config = from_dict({"run": {"name": "x", "method": "cream", "model": "bundled:tiny-random",
                                "iterations": iterations}, "eval": {"every": every}})
    ctx = SimpleNamespace(config=config)
    names = {t: [name for name, _ in stages_of(ctx, t)] for t in range(iterations)}
    assert [t for t in names if "evaluate" in names[t]] == evaluated
    assert names[0][0] == paths.BASELINE  # M0's baseline always
    assert all(paths.BASELINE not in names[t] for t in range(1, iterations))
    assert all(names[t][:5] == list(paths.STAGES[:5]) for t in range(1, iterations))


def test_runs_started_together_evaluate_m0_once(tmp_path: Path) -> None:
    """A second run asking for an entry that another process is computing waits for it (and
    then copies it), and a lock holder that dies never blocks the next."""
    import subprocess
    import sys
    import time

    from cream_engine.stages import evalcache

    settings = {"model": "m0", "eval": 1}
    code = ("import sys; from pathlib import Path; from cream_engine.stages import evalcache\n"
            f"with evalcache.one_at_a_time(Path({str(tmp_path)!r}), {settings!r}):\n"
            "    print('got', flush=True)\n")
    with evalcache.one_at_a_time(tmp_path, settings):
        waiting = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        # released only once the other process says it waits (its start-up takes seconds
        # on a loaded machine: a fixed sleep let it arrive after the release)
        said = ""
        while "waiting to copy its result" not in said:
            line = waiting.stderr.readline()
            assert line, f"the second process ended without waiting: {said}"
            said += line
        time.sleep(0.5)
        assert waiting.poll() is None  # still waiting for the lock
    out, err = waiting.communicate(timeout=60)
    assert out == "got\n"
    holder = subprocess.Popen([sys.executable, "-c", code.replace(
        "print('got', flush=True)", "print('got', flush=True); import time; time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "got\n"
    holder.kill()
    holder.wait()
    with evalcache.one_at_a_time(tmp_path, settings):  # not blocked by the dead holder
        pass
