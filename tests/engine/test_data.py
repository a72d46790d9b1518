from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from cream_engine.config import from_dict
from cream_engine.errors import DataError, ModelError
from cream_engine.files import read_jsonl, write_jsonl
from cream_engine.paths import bundled_data
from cream_engine.prompts import load_prompts, prompt_slices
from cream_engine.runs import check_inputs


def test_bundled_prompts_are_many_and_varied() -> None:
    prompts = load_prompts("bundled:prompts")
    assert len(prompts) >= 300
    rows = read_jsonl(bundled_data("prompts.jsonl"))
    cats = Counter(r["category"] for r in rows)
    assert set(cats) >= {"explain", "howto", "write", "compare", "advise", "reasoning",
                         "arithmetic"}
    assert min(cats.values()) >= 30
    assert len({p.text.lower() for p in prompts}) == len(prompts)


def test_bundled_arithmetic_answers_are_integers() -> None:
    rows = [r for r in read_jsonl(bundled_data("prompts.jsonl"))
            if r["category"] == "arithmetic"]
    assert rows and all(isinstance(r["answer"], int) for r in rows)


def test_user_files_in_prompt_and_messages_form(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join([
        json.dumps({"prompt": "What is DPO?"}),
        "",
        json.dumps({"id": "chat-1", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": "7"}]}),
    ]), encoding="utf-8")
    p1, p2 = load_prompts(str(path))
    assert (p1.id, p1.text) == ("line-1", "What is DPO?")
    assert p2.id == "chat-1" and p2.text == "Name a prime."
    assert [m["role"] for m in p2.messages] == ["system", "user"]  # the answer is dropped


@pytest.mark.parametrize("content, expected", [
    (b"", "no prompts in the file"),
    (b"\n\n", "no prompts in the file"),
    (b'{"prompt": "caf\xe9"}\n', "not UTF-8"),
    (b'{"prompt": "a"}\n{"prompt": \n', ":2: invalid JSON"),
    (b'{"text": "a"}\n', ':1: expected a non-empty "prompt"'),
    (b'{"id": 1, "prompt": "a"}\n{"id": 1, "prompt": "b"}\n', "duplicate prompt id '1'"),
    (b'["a"]\n', "expected a JSON object"),
])
def test_bad_prompt_files_are_named(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_prompts(str(path))
    assert expected in str(err.value) and str(path) in str(err.value)


def test_slices_are_disjoint_and_seeded() -> None:
    prompts = load_prompts("bundled:prompts")
    a = prompt_slices(prompts, 3, 16, seed=0)
    assert [len(s) for s in a] == [16, 16, 16]
    ids = [p.id for s in a for p in s]
    assert len(set(ids)) == 48
    assert a == prompt_slices(prompts, 3, 16, seed=0)
    assert a != prompt_slices(prompts, 3, 16, seed=1)
    with pytest.raises(DataError, match="cannot fill 100 iterations x 16"):
        prompt_slices(prompts, 100, 16, seed=0)


def test_check_inputs_names_the_field(tmp_path: Path, tiny_model_dir: Path) -> None:
    home = tmp_path / "home"
    with pytest.raises(DataError, match="x.jsonl: no such evaluation file"):
        check_inputs(from_dict({"data": {"eval_sets": [str(tmp_path / "x.jsonl")]}}), home)
    with pytest.raises(ModelError, match=r"\[run\] model = .*no such folder"):
        check_inputs(from_dict({"run": {"model": str(tmp_path / "m")}}), home)
    found = check_inputs(from_dict({"run": {"model": str(tiny_model_dir)}}), home)
    assert len(found.prompts) >= 300 and found.duplicates == found.too_long == 0
    assert not home.exists()


def test_jsonl_write_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "a" / "rows.jsonl"
    write_jsonl(path, [{"x": 1}, {"y": "é"}])
    assert read_jsonl(path) == [{"x": 1}, {"y": "é"}]
    assert [p.name for p in path.parent.iterdir()] == ["rows.jsonl"]


def test_what_a_killed_writer_left_is_removed_by_the_next_write(tmp_path: Path) -> None:
    import subprocess
    import sys

    from cream_engine.files import atomic_folder

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / f".rows.jsonl.{dead}.tmp").write_text("half a fi")
    (tmp_path / f".model.{dead}.tmp").mkdir()
    (tmp_path / f".model.{dead}.old").mkdir()
    writing = tmp_path / f".rows.jsonl.{os.getppid()}.tmp"   # a writer still at work
    writing.write_text("{")
    write_jsonl(tmp_path / "rows.jsonl", [{"x": 1}])
    with atomic_folder(tmp_path / "model") as folder:
        (folder / "weights").write_text("w")
    assert sorted(p.name for p in tmp_path.iterdir()) == [writing.name, "model", "rows.jsonl"]
    assert (tmp_path / "model" / "weights").read_text() == "w"
    with atomic_folder(tmp_path / "model") as folder:   # replaces the old folder whole
        (folder / "other").write_text("o")
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["other"]



def test_a_run_folder_killed_while_written_is_removed_by_the_next_run(tmp_path: Path) -> None:
    """Its temp folder has a new run's id, so no later write of the same target finds it:
    creating the next run sweeps the home for what dead writers left."""
    import subprocess
    import sys

    from cream_engine.runs import create_run
    from cream_engine.store import Store

    home = tmp_path / "home"
    store = Store.open(home)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (home / f".20260101-000000-x-ab12.{dead}.tmp").mkdir()
    (home / f".20260101-000000-x-ab12.{dead}.tmp" / "config.toml").write_text("[run]\n")
    alive = home / f".20260101-000000-y-cd34.{os.getpid()}.tmp"   # a create still at work
    alive.mkdir()
    run_id = create_run(store, home, from_dict({}))
    assert sorted(p.name for p in home.iterdir() if p.name.startswith(".")) == [alive.name]
    assert (home / run_id / "config.toml").is_file()
