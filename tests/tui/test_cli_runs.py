"""The CLI's runs as the user names and reads them: tables that keep each run's name whole at
80 columns and when piped, `queue ls` with names, a run named by its name, a name prefix or
an id prefix (an ambiguous one listed, exit 2), and `cream tui` refused without a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cream_engine.store import open_store
from tests.conftest import REPO, run_cli

LONG = "sweep-lr-3e-6-beta-0.05-seed-1234"   # a name as long as users make them
RUNS = {  # id -> (name, created, status)
    f"20260101-090000-{LONG}-aa01": (LONG, 100.0, "running"),
    "20260101-100000-demo-cream-bb02": ("demo-cream", 200.0, "done"),
    "20260101-100001-demo-srlm-cc03": ("demo-srlm", 201.0, "queued"),
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("cli-runs") / "home"
    store = open_store(home)
    for run_id, (name, created, status) in RUNS.items():
        store.create_run(run_id, name=name, method="cream", model="m", iterations=2,
                         run_dir=str(home / run_id), config_toml="", status=status)
        store.execute("UPDATE runs SET created_at = ? WHERE id = ?", [created, run_id])
        store.execute("INSERT INTO jobs (run_id, status, priority, gpus, created_at) "
                      "VALUES (?, ?, 0, -1, ?)", [run_id, status, created])
    store.start_stage(f"20260101-090000-{LONG}-aa01", 1, "generate", total_items=300)
    store.close()
    return home


def cli(home: Path, *args: str, columns: int | None = 80) -> subprocess.CompletedProcess:
    env = {"COLUMNS": str(columns)} if columns else {}
    if columns is None:   # piped with no COLUMNS: rich's default width
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return run_cli(*args, home=home, env=env)


@pytest.mark.parametrize("columns", [80, None], ids=["80", "piped"])
def test_tables_keep_every_run_name_whole(home: Path, columns: int | None) -> None:
    for args in (("status",), ("queue", "ls", "--all")):
        r = cli(home, *args, columns=columns)
        assert r.returncode == 0, r.stderr
        check_names(r.stdout, 80)
    wide = cli(home, "queue", "ls", "--all", columns=200).stdout
    assert all(run_id in wide for run_id in RUNS)                 # with room: the ids too


def check_names(text: str, width: int) -> None:
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), text
    assert lines[0].split()[:2] in (["name", "id"], ["job", "name"], ["name", "status"]), text
    for name, _, status in RUNS.values():   # each name whole, on the line of its status
        assert any(name in line and status in line for line in lines), text


@pytest.mark.parametrize("width", [50, 30])
def test_narrower_tables_drop_other_columns_first(home: Path, width: int) -> None:
    import io

    from rich.console import Console

    from cream_engine import queue, results
    from cream_tui import tables

    store = open_store(home, create=False)
    for show in (lambda c: tables.print_runs(results.run_summaries(store), c),
                 lambda c: tables.print_jobs([queue.summary(j) for j in queue.jobs(store)], c)):
        console = Console(file=io.StringIO(), width=width)
        show(console)
        text = console.file.getvalue()
        if width > len(LONG) + 12:          # the name and the status fit: all on one line
            check_names(text, width)
            continue
        # narrower than the longest name and its status: that name wraps, never cut
        lines = text.splitlines()
        assert lines[0].split() == ["name", "status"] and max(map(len, lines)) <= width, text
        column = "".join(line[:lines[0].index("status")].strip() for line in lines[1:])
        assert all(name in column for name, _, _ in RUNS.values()), text


def cream(home: Path, *args: str, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """`cream ARGS` in this process, as its console script runs it: (exit code, out, err)."""
    from cream_tui import cli as cream_cli

    monkeypatch.setattr(sys, "argv", ["cream", "--home", str(home), *args])
    with pytest.raises(SystemExit) as exit_:
        cream_cli.main()
    out, err = capsys.readouterr()
    return exit_.value.code or 0, out, err


def test_a_run_by_name_name_prefix_or_id_prefix(home: Path, monkeypatch, capsys) -> None:
    srlm = "20260101-100001-demo-srlm-cc03"
    for ref in ("demo-srlm", "demo-s", "20260101-100001", srlm):
        code, out, err = cream(home, "status", ref, "--json", monkeypatch=monkeypatch,
                               capsys=capsys)
        assert code == 0 and json.loads(out)["id"] == srlm, (ref, err)
    code, out, err = cream(home, "queue", "priority", "demo-s", "5", monkeypatch=monkeypatch,
                           capsys=capsys)
    assert code == 0 and out.strip() == f"{srlm}: priority 5", err
    code, out, err = cream(home, "export", "sweep", "--format", "json",
                           monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and LONG in out, err
    code, out, err = cream(home, "status", "demo-x", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and err == "cream: error: run 'demo-x': no such run\n"


def test_an_ambiguous_run_is_one_line_listing_the_candidates(home: Path, monkeypatch,
                                                             capsys) -> None:
    for args in (("status", "demo"), ("logs", "2026"), ("queue", "cancel", "demo"),
                 ("queue", "wait", "demo-srlm", "demo-")):
        code, out, err = cream(home, *args, monkeypatch=monkeypatch, capsys=capsys)
        lines = err.splitlines()
        assert code == 2 and len(lines) == 1 and out == "", (args, err)
        ref = args[-1] if args[0] != "logs" else "2026"
        assert lines[0].startswith(f"cream: error: run '{ref}': ambiguous, "), lines
        assert "20260101-100001-demo-srlm-cc03 (demo-srlm)" in lines[0]
        assert "20260101-100000-demo-cream-bb02 (demo-cream)" in lines[0]


def test_cream_tui_without_a_terminal_is_one_line(home: Path) -> None:
    r = run_cli("tui", home=home)      # (stdin, stdout and stderr are not terminals here)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [(
        "cream: error: cream tui needs a terminal: stdin is not one (over ssh: ssh -t HOST "
        "cream tui); try `cream status` for the runs as text")]
    # stdin and stderr a terminal (a pty), stdout piped: refused too, naming stdout
    import pty

    main, child = pty.openpty()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREAM_")}
        proc = subprocess.run([sys.executable, "-m", "cream_tui.cli", "--home", str(home),
                               "tui"], stdin=child, stdout=subprocess.PIPE, stderr=child,
                              env=env, cwd=REPO, timeout=60, check=False)
        os.close(child)
        err = os.read(main, 4096).decode()
    finally:
        os.close(main)
    assert proc.returncode == 2 and proc.stdout == b""
    assert "cream tui needs a terminal: stdout is not one" in err and err.count("\n") == 1


def test_cream_tui_entry_point_without_a_terminal_is_one_line(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREAM_")}
    r = subprocess.run([sys.executable, "-c", "from cream_tui.app import main; main()",
                        "--home", str(home)], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, env=env, cwd=REPO, timeout=60, check=False)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [(
        "cream-tui: error: cream-tui needs a terminal: stdin is not one (over ssh: ssh -t "
        "HOST cream-tui); try `cream status` for the runs as text")]
