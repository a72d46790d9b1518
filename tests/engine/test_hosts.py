"""Hosts without ssh: the `[hosts]` table of the user config, `--host` names, the ssh command
line and the far shell line it runs, what an ended link means, and `--host` taken out of a
forwarded command line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cream_engine import hosts, userconfig
from cream_engine.errors import ConfigError, UsageError
from cream_engine.hosts import HostSpec
from cream_tui.cli.common import without_host

PRINT_ARGS = "printf '%s\\n'"   # a command that prints each argument it gets on its own line


@pytest.fixture
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write the user config (TOML text) and point CREAM_USER_CONFIG at it; its path."""
    path = tmp_path / "cfg dir" / "config.toml"
    path.parent.mkdir()
    monkeypatch.setenv(userconfig.ENV, str(path))

    def write(text: str) -> Path:
        path.write_text(text)
        return path

    return write


def _sh(line: str, env: dict | None = None) -> list[str]:
    out = subprocess.run(["sh", "-c", line], check=False, capture_output=True, text=True,
                         timeout=10, env=env)
    assert out.returncode == 0, (line, out.stderr)
    return out.stdout.splitlines()


# -- the [hosts] table ---------------------------------------------------------------------


def test_no_file_and_no_table_mean_no_hosts(user_config, tmp_path):
    assert userconfig.host_specs() == {}          # (the file does not exist yet)
    user_config('[slurm]\npartition = "gpu"\n')
    assert userconfig.host_specs() == {}


def test_defaults_ssh_is_the_name_command_is_cream(user_config):
    user_config("[hosts.gpu1]\n[hosts.gpu2]\nssh = \"me@10.0.0.7\"\nhome = \"/data/runs\"\n")
    specs = userconfig.host_specs()
    assert specs == {"gpu1": HostSpec("gpu1", "gpu1", "cream", None),
                     "gpu2": HostSpec("gpu2", "me@10.0.0.7", "cream", "/data/runs")}
    assert specs["gpu1"].remote(["status", "--json"]) == "cream status --json"
    assert specs["gpu2"].remote(["feed"]) == "cream --home /data/runs feed"


def test_venv_becomes_its_bin_cream_with_a_leading_tilde_unquoted(user_config, tmp_path):
    user_config('[hosts.a]\nvenv = "~/venvs/my cream/"\n'
                '[hosts.b]\nvenv = "/opt/cream env"\n'
                '[hosts.c]\nvenv = "/opt/v"\n'
                '[hosts.d]\ncommand = "env X=1 ~/bin/cream"\n')
    specs = userconfig.host_specs()
    assert specs["a"].command == "~/'venvs/my cream/bin/cream'"
    assert specs["b"].command == "'/opt/cream env/bin/cream'"
    assert specs["c"].command == "/opt/v/bin/cream"
    assert specs["d"].command == "env X=1 ~/bin/cream"      # a command is used as written

    # the far shell expands the ~ and keeps the blank: it runs that very file
    fake_home = tmp_path / "far home"
    script = fake_home / "venvs" / "my cream" / "bin" / "cream"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\necho \"ran $0\"\nprintf '%s\\n' \"$@\"\n")
    script.chmod(0o755)
    env = {**os.environ, "HOME": str(fake_home)}
    assert _sh(specs["a"].remote(["feed", "a b"]), env) == [f"ran {script}", "feed", "a b"]


def test_home_becomes_home_option_and_arguments_survive_the_far_shell():
    args = ["status", "a b", "x;echo injected", "$HOME", "it's", "`id`", "*", ""]
    spec = HostSpec("h", "h", PRINT_ARGS, "/data/my runs;rm")
    assert spec.remote(["status"]).startswith(PRINT_ARGS + " --home ")
    assert _sh(spec.remote(args)) == ["--home", "/data/my runs;rm", *args]
    assert _sh(HostSpec("h", "h", PRINT_ARGS).remote(args)) == args   # no home: none given


@pytest.mark.parametrize("text, names", [
    ('[hosts.gpu1]\nsshh = "x"\n', ["[hosts.gpu1] sshh", "unknown key"]),
    ("[hosts.gpu1]\nssh = 3\n", ["[hosts.gpu1] ssh", "non-empty string"]),
    ('[hosts.gpu1]\nhome = ""\n', ["[hosts.gpu1] home", "non-empty string"]),
    ("[hosts.gpu1]\nvenv = [\"a\"]\n", ["[hosts.gpu1] venv", "non-empty string"]),
    ('[hosts.gpu1]\nvenv = "~/v"\ncommand = "cream"\n', ["[hosts.gpu1]", "not both"]),
    ('[hosts.local]\nssh = "x"\n', ["[hosts.local]"]),
    ("[hosts]\nx = 1\n", ["[hosts] x", "[hosts.x]"]),
    ("hosts = 1\n", ["[hosts] must be a table"]),
    ("[hosts\n", ["not valid TOML"]),
])
def test_errors_are_one_line_naming_the_file_and_key(user_config, text, names):
    path = user_config(text)
    with pytest.raises(ConfigError) as caught:
        userconfig.host_specs()
    message = str(caught.value)
    assert "\n" not in message and message == caught.value.line
    assert message.startswith(f"{path}: "), message
    for name in names:
        assert name in message, message


def test_every_host_is_checked_not_only_the_first(user_config):
    user_config('[hosts.ok]\nssh = "a"\n[hosts.bad]\nport = 22\n')
    with pytest.raises(ConfigError, match=r"\[hosts.bad\] port: unknown key"):
        userconfig.host_specs()


# -- --host values -------------------------------------------------------------------------


def test_resolve_local_known_and_any_destination():
    known = {"gpu1": HostSpec("gpu1", "me@gpu1.lab", "~/v/bin/cream", "/data")}
    assert hosts.resolve("local", known) is None
    assert hosts.resolve("gpu1", known) is known["gpu1"]
    assert hosts.resolve("me@10.0.0.7", known) == HostSpec("me@10.0.0.7", "me@10.0.0.7",
                                                           "cream", None)
    for bad in ("-x", "-oProxyCommand=touch /tmp/x", "", "  "):
        with pytest.raises(UsageError, match="not a host name or ssh destination"):
            hosts.resolve(bad, known)


# -- the ssh command line --------------------------------------------------------------------


def test_argv_uses_ssh_or_the_words_of_cream_ssh_command(monkeypatch):
    spec = HostSpec("gpu1", "me@gpu1", "cream", None)
    monkeypatch.delenv(hosts.SSH_ENV, raising=False)
    assert spec.argv(["status", "--json"]) == ["ssh", "-T", "me@gpu1", "cream status --json"]
    assert spec.argv(["logs", "x"], tty=True) == ["ssh", "-t", "me@gpu1", "cream logs x"]

    monkeypatch.setenv(hosts.SSH_ENV, "ssh -F '/tmp/my config' -v")
    assert spec.argv(["status"]) == ["ssh", "-F", "/tmp/my config", "-v", "-T", "me@gpu1",
                                     "cream status"]
    monkeypatch.setenv(hosts.SSH_ENV, "   ")
    assert spec.argv(["status"])[0] == "ssh"
    monkeypatch.setenv(hosts.SSH_ENV, "ssh -F 'unclosed")
    with pytest.raises(UsageError, match=hosts.SSH_ENV):
        spec.argv(["status"])


def test_batch_options_only_for_the_dashboard(monkeypatch):
    monkeypatch.delenv(hosts.SSH_ENV, raising=False)
    spec = HostSpec("gpu1", "gpu1")
    plain = spec.argv(["feed"])
    batch = spec.argv(["feed"], batch=True)
    assert not any("BatchMode" in w or "ServerAlive" in w for w in plain)
    assert batch[:2] == ["ssh", "-T"] and batch[-2:] == ["gpu1", "cream feed"]
    options = [batch[i + 1] for i, w in enumerate(batch) if w == "-o"]
    assert "BatchMode=yes" in options
    assert any(o.startswith("ServerAliveInterval=") for o in options)
    assert any(o.startswith("ConnectTimeout=") for o in options)


# -- what an ended link means -------------------------------------------------------------


def test_problem_of_an_ended_link():
    spec = HostSpec("gpu1", "me@gpu1", "~/v/bin/cream")
    state, line = hosts.problem_of(
        255, "ssh: connect to host gpu1 port 22: Connection refused\n", spec)
    assert state == "down" and line.startswith("ssh me@gpu1: ")
    assert line.endswith("connect to host gpu1 port 22: Connection refused")
    assert hosts.problem_of(255, "", spec) == ("down", "ssh me@gpu1: connection failed")

    for stderr in ("sh: 1: ~/v/bin/cream: not found\n",
                   "bash: line 1: /root/v/bin/cream: No such file or directory\n"):
        state, line = hosts.problem_of(127, stderr, spec)
        assert state == "down"
        assert line == ("`~/v/bin/cream` not found on gpu1: set [hosts.gpu1] command or venv")

    state, line = hosts.problem_of(
        2, "Usage: cream [OPTIONS] COMMAND [ARGS]...\nTry 'cream --help' for help.\n\n"
           "Error: No such command 'feed'.\n", spec)
    assert state == "mismatch" and "has no `feed`" in line and "gpu1" in line
    assert "\n" not in line

    assert hosts.problem_of(1, "Traceback...\nRuntimeError: boom\n", spec) == (
        "down", "feed ended (exit 1): RuntimeError: boom")
    assert hosts.problem_of(0, "", spec) == ("down", "feed ended (exit 0)")


# -- `--host` out of a forwarded command line ------------------------------------------------


@pytest.mark.parametrize("argv, want", [
    (["status", "--host", "gpu1", "--json"], ["status", "--json"]),
    (["--host", "gpu1", "status"], ["status"]),
    (["status", "--host=me@gpu1", "--json"], ["status", "--json"]),
    (["status", "--json"], ["status", "--json"]),
    (["logs", "run-1", "--follow"], ["logs", "run-1", "--follow"]),
])
def test_without_host(argv, want):
    assert without_host(argv) == want
