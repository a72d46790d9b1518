"""Building a bundled model the first time says so on stderr, before and after with the time
taken (the SmolLM2 conversion takes a minute or two, and the demo and `cream run` would
otherwise sit silent); a model already built, or a quick one, says nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cream_engine import models


def test_a_slow_first_build_says_so_with_its_time(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    built = []

    def build(folder: Path) -> dict:  # (the real conversion is in the slow tests)
        built.append(folder)
        (folder / "config.json").write_text("{}")
        return {}

    target = models.prepare("smollm2-135m-instruct", tmp_path, build)
    captured = capsys.readouterr()
    assert captured.out == "" and len(built) == 1
    assert captured.err.splitlines()[0] == (
        "cream: preparing SmolLM2-135M-Instruct once (under 2 min)…")
    done = rf"cream: prepared SmolLM2-135M-Instruct in \d+s \({re.escape(str(target))}\)"
    assert re.fullmatch(done, captured.err.splitlines()[1]), captured.err
    assert len(captured.err.splitlines()) == 2
    models.prepare("smollm2-135m-instruct", tmp_path, build)   # built: nothing to say
    models.prepare("tiny-random", tmp_path, build)             # seconds: nothing to say
    assert capsys.readouterr().err == "" and len(built) == 2
