from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

COMMANDS = ["init", "validate", "run", "status", "submit", "queue", "worker", "logs", "gpus",
            "compare", "export", "plan", "demo", "tui",
            "feed", "show"]


def _all_commands() -> list[list[str]]:
    """Every command path of the real Typer app, sub-apps included."""
    import typer.main

    from cream_tui.cli import app

    root = typer.main.get_command(app)
    paths = []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        paths.append([name])
        for sub in getattr(cmd, "commands", {}):
            paths.append([name, sub])
    return paths


def test_every_command_has_help() -> None:
    from typer.testing import CliRunner

    from cream_tui.cli import app

    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0 and "Exit codes" in top.output
    paths = _all_commands()
    assert {p[0] for p in paths} == set(COMMANDS)
    assert ["queue", "wait"] in paths and ["worker", "start"] in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Usage" in result.output and len(result.output.splitlines()) > 3, path


def test_init_then_validate(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The example config validates as written (on the bundled model, not built yet: its
    prompts are measured with the tokenizer of the GGUF it will be built from)."""
    home = tmp_path / "home"
    r = run_cli("init", "x.toml", cwd=tmp_path, home=home)
    assert r.returncode == 0, r.stderr
    r = run_cli("validate", "x.toml", cwd=tmp_path, home=home)
    assert r.returncode == 0, r.stderr
    assert '[train]\nbeta = 0.1' in r.stdout and "x.toml: ok" in r.stderr
    r = run_cli("init", "x.toml", cwd=tmp_path, home=home)
    assert r.returncode == 2 and "already exists" in r.stderr
    r = run_cli("validate", "x.toml", "--json", "--set", "generate.n=6", "--set",
                f"run.model={tiny_model_dir}", cwd=tmp_path, home=home)
    assert json.loads(r.stdout)["generate"]["n"] == 6
    assert not home.exists()


def _prompt_file(tmp_path: Path, name: str, content: bytes) -> str:
    (tmp_path / name).write_bytes(content)
    return f'[data]\nprompts = "{name}"\n'


MALFORMED = {
    "unknown key": ("[generate]\ntemprature = 0.7\n", "temprature (did you mean"),
    "wrong type": ('[train]\nbeta = "high"\n', '[train] beta = "high": expected a number'),
    "negative n": ("[generate]\nn = -4\n", "[generate] n = -4: must be >= 2"),
    "temperature out of range": ("[generate]\ntemperature = 7.0\n",
                                 "[generate] temperature = 7.0: must be <= 2.0"),
    "missing file": ('[data]\nprompts = "nowhere.jsonl"\n', "no such prompt file"),
    "empty prompt file": (("empty.jsonl", b""), "no prompts in the file"),
    "non-UTF-8 prompt file": (("latin.jsonl", '{"prompt": "caf\xe9"}\n'.encode("latin-1")),
                              "not UTF-8"),
    "bad method name": ('[run]\nmethod = "ppo"\n', "[run] method = 'ppo': must be one of"),
    "iterations = 0": ("[run]\niterations = 0\n", "[run] iterations = 0: must be >= 1"),
    "duplicate section": ("[run]\nseed = 1\n[run]\nseed = 2\n", "invalid TOML"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_configs_exit_2_with_one_line(tmp_path: Path, case: str) -> None:
    body, expected = MALFORMED[case]
    if isinstance(body, tuple):
        body = _prompt_file(tmp_path, *body)
    (tmp_path / "bad.toml").write_text(body, encoding="utf-8")
    home = tmp_path / "home"
    r = run_cli("validate", "bad.toml", cwd=tmp_path, home=home)
    assert r.returncode == 2, (case, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], (case, r.stderr)
    assert lines[0].startswith("cream: error: ")
    assert r.stdout == ""
    assert not home.exists()


def test_missing_config_file(tmp_path: Path) -> None:
    r = run_cli("validate", "absent.toml", cwd=tmp_path)
    assert r.returncode == 2 and "absent.toml: no such file" in r.stderr


def test_status_on_an_empty_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = run_cli("status", "--json", home=home)
    assert r.returncode == 0 and json.loads(r.stdout) == []
    r = run_cli("status", home=home)
    assert r.returncode == 0 and "no runs yet" in r.stderr
    r = run_cli("status", "ghost", home=home)
    assert r.returncode == 2 and "no such run" in r.stderr
    assert not home.exists()


def test_status_lists_runs_from_the_store(tmp_path: Path) -> None:
    from cream_engine.store import open_store

    home = tmp_path / "home"
    s = open_store(home)
    s.create_run("run-a", name="alpha", method="cream", model="m", iterations=3,
                 run_dir=str(home / "run-a"), config_toml="")
    s.set_run_status("run-a", "running")
    s.upsert_iteration("run-a", 0, status="done", n_pairs=7, mean_tau=0.25)
    s.start_stage("run-a", 1, "generate", total_items=8)
    s.stage_progress("run-a", 1, "generate", 3)
    s.log_metrics("run-a", 0, "train", 1, {"loss": 0.5})
    s.close()
    rows = json.loads(run_cli("status", "--json", home=home).stdout)
    assert rows[0]["id"] == "run-a" and rows[0]["iteration"] == 1
    assert rows[0]["stage"] == "generate" and rows[0]["stage_progress"] == [3, 8]
    r = run_cli("status", home=home)
    assert "run-a" in r.stdout and "generate 3/8" in r.stdout and "1/3" in r.stdout
    detail = json.loads(run_cli("status", "alpha", "--json", "--home", str(home)).stdout)
    assert detail["latest_metrics"] == {"loss": 0.5}
    assert detail["iterations_detail"][0]["n_pairs"] == 7


def test_newer_store_is_a_clear_error(tmp_path: Path) -> None:
    from cream_engine.store import open_store

    s = open_store(tmp_path)
    s.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
              "VALUES ('cream', 'm999_future', 'now')")
    s.close()
    r = run_cli("status", home=tmp_path)
    assert r.returncode == 2 and "newer cream" in r.stderr


def test_gpus_without_a_gpu_says_so() -> None:
    r = run_cli("gpus")
    assert r.returncode == 0 and "no GPU" in r.stdout
    data = json.loads(run_cli("gpus", "--json").stdout)
    assert data["gpus"] == [] and data["reason"].startswith("no GPU")


def test_gpus_reads_through_the_same_interface(tmp_path: Path) -> None:
    fake = tmp_path / "gpus.json"
    fake.write_text(json.dumps([{"utilization": 37, "memory_used_mb": 1000,
                                 "memory_total_mb": 80000, "temperature_c": 41,
                                 "power_w": None, "processes": [{"pid": 4242}]}]))
    env = {"CREAM_FAKE_GPUS": str(fake)}
    data = json.loads(run_cli("gpus", "--json", env=env).stdout)
    assert data["gpus"][0]["memory_free_mb"] == 79000
    text = run_cli("gpus", env=env).stdout
    assert "util 37%" in text and "1.0/78.1 GiB" in text and "N/A" in text


def test_an_unexpected_error_is_one_line_and_a_logged_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import sys

    from cream_engine import results
    from cream_engine.store import open_store
    from cream_tui import cli

    home = tmp_path / "home"
    open_store(home).close()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk is on fire\nand a second line")

    monkeypatch.setattr(results, "run_summaries", broken)
    monkeypatch.setattr(sys, "argv", ["cream", "--home", str(home), "status"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    log = home / "logs" / "cli-errors.log"
    assert err == [f"cream: internal error: RuntimeError: the disk is on fire (traceback in "
                   f"{log})"]
    assert "Traceback" in log.read_text() and "in broken" in log.read_text()


def test_expected_errors_are_caught_once_with_their_exit_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import sys

    from cream_tui import cli

    for argv, code in ((["status", "ghost"], 2), (["queue", "cancel", "ghost"], 2),
                       (["logs", "ghost"], 2), (["export", "ghost"], 2)):
        monkeypatch.setattr(sys, "argv", ["cream", "--home", str(tmp_path / "h"), *argv])
        with pytest.raises(SystemExit) as exit_:
            cli.main()
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == code and len(err) == 1, (argv, err)
        assert err[0].startswith("cream: error: run 'ghost': no such run"), err
    assert not (tmp_path / "h").exists()
