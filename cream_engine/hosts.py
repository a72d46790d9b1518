"""Other boxes over the user's own `ssh`: no port opened anywhere, no server of ours.

A host is a name, an ssh destination (anything `ssh` accepts: `gpu1`, `me@10.0.0.7`, a `Host`
of `~/.ssh/config` with its ProxyJump and ControlMaster), the `cream` to run there and its data
home. They come from `[hosts]` in the user config (`userconfig.py`):

    [hosts.gpu1]
    ssh = "me@gpu1.lab"            # default: the name itself
    venv = "~/venvs/cream"         # or: command = "env CUDA_HOME=… ~/bin/cream"
    home = "/data/cream-runs"      # default: that side's $CREAM_HOME or ./runs

`--host NAME` takes such a name, `local` (this box's own data home), or any ssh destination.
`$CREAM_SSH_COMMAND` replaces `ssh` (e.g. `ssh -F other_config`), as GIT_SSH_COMMAND does.

Two uses of the same transport:
- the CLI forwards a command (`cream status --host gpu1 --json` runs `cream status --json`
  there, its output and exit code passed through): `forward`;
- the dashboard keeps one `ssh HOST cream feed` per host open (`HostLink`): the far side
  streams JSON lines (the runs that changed, GPU readings at a fixed rate, a heartbeat, the
  watched run, replies) and reads requests on its stdin. A link that breaks is retried with
  backoff; a host down or silent says so while the others keep updating; a far `cream` that
  speaks another protocol says so in one line.

Light layer: standard library only.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from cream_engine.errors import ConfigError, CreamError, UsageError

PROTOCOL = 1            # the feed's message format; both ends must speak the same
LOCAL = "local"         # the name of this box's own data home among the hosts
SSH_ENV = "CREAM_SSH_COMMAND"
HEARTBEAT_S = 2.0       # the feed writes at least this often
SLOW_S = 3 * HEARTBEAT_S + 1   # no line for this long: the host is slow (or the link hangs)
RETRY_S = (1.0, 2.0, 4.0, 8.0)  # backoff between attempts, then the last one again
HISTORY = 240           # GPU readings kept per board
REPLY_S = 120.0         # a request's reply (a submit checks the config: seconds)
KEYS = {"ssh": "the ssh destination [default: the host's name]",
        "command": "the cream command there, a shell line [default: cream]",
        "venv": "a virtual environment there whose bin/cream is run",
        "home": "the data home there [default: that side's $CREAM_HOME or ./runs]"}


class HostDown(CreamError):
    """A host cannot be reached, or its link broke before a reply."""


@dataclass(frozen=True)
class HostSpec:
    name: str
    ssh: str
    command: str = "cream"
    home: str | None = None

    def remote(self, args: list[str]) -> str:
        """The shell line run there: the command as written (it may set variables), then the
        data home and the arguments, quoted."""
        home = ["--home", self.home] if self.home else []
        return " ".join([self.command, *(shlex.quote(a) for a in [*home, *args])])

    def argv(self, args: list[str], *, tty: bool = False, batch: bool = False) -> list[str]:
        """The local ssh command line running `cream ARGS` there."""
        opts = ["-t" if tty else "-T"]
        if batch:  # the dashboard: never a password prompt, and a dead peer noticed in ~10 s
            opts += ["-o", "BatchMode=yes", "-o", "ServerAliveInterval=5",
                     "-o", "ServerAliveCountMax=2", "-o", "ConnectTimeout=10"]
        return [*ssh_base(), *opts, self.ssh, self.remote(args)]


def ssh_base() -> list[str]:
    text = os.environ.get(SSH_ENV) or "ssh"
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise UsageError(f"${SSH_ENV}: cannot be read as a command line ({e})") from None
    return words or ["ssh"]


def configured(table: dict[str, Any], path: str) -> dict[str, HostSpec]:
    """The `[hosts]` table of the user config, checked key by key."""
    specs = {}
    for name, entry in table.items():
        if name == LOCAL:
            raise ConfigError(f"{path}: [hosts.{LOCAL}]: the name is this box's own data home")
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: [hosts] {name} must be a table ([hosts.{name}])")
        for key, value in entry.items():
            if key not in KEYS:
                raise ConfigError(f"{path}: [hosts.{name}] {key}: unknown key (known: "
                                  f"{', '.join(KEYS)})")
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{path}: [hosts.{name}] {key}: must be a non-empty string")
        if "venv" in entry and "command" in entry:
            raise ConfigError(f"{path}: [hosts.{name}]: give command or venv, not both")
        command = entry.get("command") or (
            shell_path(entry["venv"].rstrip("/") + "/bin/cream") if "venv" in entry
            else "cream")
        specs[name] = HostSpec(name, entry.get("ssh", name), command, entry.get("home"))
    return specs


def shell_path(path: str) -> str:
    """A path quoted for the far shell, a leading ~/ left for it to expand."""
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("cream")
    except PackageNotFoundError:
        return "unknown"


def resolve(name: str, known: dict[str, HostSpec]) -> HostSpec | None:
    """A `--host` value: None for `local`, a configured host, else an ssh destination run
    with the defaults."""
    if name == LOCAL:
        return None
    if not name.strip() or name.startswith("-"):
        raise UsageError(f"--host {name!r}: not a host name or ssh destination")
    return known.get(name) or HostSpec(name, name)


def forward(spec: HostSpec, args: list[str], *, tty: bool = False) -> int:
    """Run `cream ARGS` on the host, its stdin, stdout and stderr this process's; its exit
    code. ssh's own failure (exit 255) is a `HostDown`."""
    try:
        code = subprocess.call(spec.argv(args, tty=tty))
    except FileNotFoundError:
        raise HostDown(f"host {spec.name}: no `{ssh_base()[0]}` on this machine") from None
    if code == 255:
        raise HostDown(f"host {spec.name}: ssh {spec.ssh} failed (its message is above)")
    return code


def problem_of(code: int | None, stderr: str, spec: HostSpec) -> tuple[str, str]:
    """(state, line) for a link that ended: "mismatch" when the far cream is too old for the
    feed (no retry helps), else "down"."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if "No such command" in stderr and "feed" in stderr:
        return "mismatch", (f"cream on {spec.name} has no `feed` (older than this one): "
                            "install the same version there")
    if code == 255:
        return "down", f"ssh {spec.ssh}: {last.removeprefix('ssh: ') or 'connection failed'}"
    if code == 127 or (code == 126 and "not found" in last):
        return "down", (f"`{spec.command}` not found on {spec.name}: set [hosts.{spec.name}] "
                        "command or venv")
    return "down", f"feed ended (exit {code}){': ' + last if last else ''}"


class HostLink:
    """One host's feed: an ssh process kept open, read by a thread into plain values the
    dashboard reads (`state`, `runs`, `gpus`, `watched`), retried with backoff when it ends.

    Everything the reader changes is changed under `lock`; readers take a copy under it."""

    def __init__(self, spec: HostSpec, *, gpu_s: float = 1.0, poll_s: float = 1.0,
                 retry: tuple[float, ...] = RETRY_S):
        self.spec = spec
        self.feed_args = ["feed", "--poll", str(poll_s), "--gpu-every", str(gpu_s)]
        self.retry = retry
        self.lock = threading.Lock()
        self.state = "connecting"       # connecting, up, slow, down, mismatch
        self.line = "connecting…"
        self.hello: dict[str, Any] = {}
        self.runs: dict[str, dict] = {}
        self.received_at: dict[str, float] = {}   # run id -> monotonic time of its row
        self.drained = False
        self.problem: str | None = None           # the far home's empty state or error
        self.gpu_meta: dict[str, Any] = {"gpus": [], "reason": "connecting…"}
        self.gpu_now: dict[int, list] = {}        # index -> [util, used, temp, power]
        self.gpu_history: dict[int, tuple[deque, deque]] = {}
        self.watched: dict[str, dict] = {}        # run id -> the run screen's fields
        self.bytes_in = 0
        self.lines_in = 0
        self.connects = 0
        self._watch: tuple[str, int] | None = None
        self._last_line = 0.0
        self._proc: subprocess.Popen | None = None
        self._write = threading.Lock()
        self._pending: dict[int, tuple[threading.Event, list]] = {}
        self._ids = itertools.count(1)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"host-{spec.name}")

    def start(self) -> HostLink:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
        self._thread.join(timeout=5)

    # -- what the dashboard asks ---------------------------------------------------------

    def status(self) -> tuple[str, str]:
        """(state, line); "slow" when an open link has been silent past SLOW_S."""
        with self.lock:
            if self.state == "up" and time.monotonic() - self._last_line > SLOW_S:
                return "slow", f"no data for {time.monotonic() - self._last_line:.0f}s"
            return self.state, self.line

    def watch(self, run_id: str | None, buckets: int = 0) -> None:
        """Ask for one run's screen fields (None: stop)."""
        want = None if run_id is None else (run_id, buckets)
        if want == self._watch:
            return
        self._watch = want
        self._send({"op": "watch", "run": run_id, "buckets": buckets})

    def request(self, op: str, timeout: float = REPLY_S, **fields: Any) -> dict:
        """Send a request and wait for its reply (a dict with "ok"); `HostDown` when the link
        is not up or breaks first."""
        rid = next(self._ids)
        done, box = threading.Event(), []
        self._pending[rid] = (done, box)
        try:
            if not self._send({"op": op, "id": rid, **fields}):
                raise HostDown(f"host {self.spec.name} is {self.status()[0]}: {self.status()[1]}")
            if not done.wait(timeout):
                raise HostDown(f"host {self.spec.name}: no reply in {timeout:.0f}s")
        finally:
            self._pending.pop(rid, None)
        if not box:
            raise HostDown(f"host {self.spec.name}: the link broke before a reply")
        return box[0]

    # -- the link ------------------------------------------------------------------------

    def _send(self, message: dict) -> bool:
        proc = self._proc
        if proc is None or proc.stdin is None or self.state not in ("up", "slow"):
            return False
        try:
            with self._write:
                proc.stdin.write((json.dumps(message) + "\n").encode())
                proc.stdin.flush()
            return True
        except (OSError, ValueError):
            return False

    def _run(self) -> None:
        failures = 0
        while not self._closed.is_set():
            stayed = self._connect_once()
            if self._closed.is_set() or self.state == "mismatch":
                return
            failures = 0 if stayed else failures + 1
            wait = self.retry[min(failures, len(self.retry) - 1)]
            with self.lock:
                self.line += f" (retry in {wait:g}s)"
            self._closed.wait(wait)

    def _connect_once(self) -> bool:
        """One connection, read until it ends; whether it got as far as the hello."""
        try:
            proc = subprocess.Popen(self.spec.argv(self.feed_args, batch=True),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            with self.lock:
                self.state, self.line = "down", f"cannot start ssh ({e.strerror})"
            return False
        self._proc = proc
        if self._closed.is_set():  # (closed while it started: close() may have missed it)
            proc.terminate()
        errors: deque[str] = deque(maxlen=20)
        drain = threading.Thread(target=lambda: errors.extend(
            ln.decode(errors="replace") for ln in proc.stderr), daemon=True)  # type: ignore
        drain.start()
        greeted = False
        assert proc.stdout is not None
        for raw in proc.stdout:
            with self.lock:
                self.bytes_in += len(raw)
                self.lines_in += 1
                self._last_line = time.monotonic()
            try:
                message = json.loads(raw)
            except ValueError:
                continue  # (a login banner or a stray print: not ours)
            if message.get("t") == "hello":
                greeted = self._hello(message)
                if not greeted:
                    proc.terminate()
                    break
                if self._watch is not None:
                    run_id, buckets = self._watch
                    self._send({"op": "watch", "run": run_id, "buckets": buckets})
            elif greeted:
                self._handle(message)
        code = proc.wait()
        drain.join(timeout=2)
        self._proc = None
        for done, _ in list(self._pending.values()):
            done.set()
        with self.lock:
            if self.state != "mismatch":
                self.state, self.line = problem_of(code, "".join(errors), self.spec)
            self.gpu_meta = {**self.gpu_meta, "reason": f"host {self.state}"}
        return greeted

    def _hello(self, message: dict) -> bool:
        ours, theirs = version(), message.get("version", "?")
        with self.lock:
            self.hello = message
            if message.get("protocol") != PROTOCOL:
                self.state = "mismatch"
                self.line = (f"{self.spec.name} runs cream {theirs} (feed protocol "
                             f"{message.get('protocol')}); this is cream {ours} (protocol "
                             f"{PROTOCOL}): install the same version on both")
                return False
            self.connects += 1
            self.state = "up"
            self.line = "up" if theirs == ours else f"up; cream {theirs} there, {ours} here"
            self.runs, self.received_at, self.watched = {}, {}, {}
            return True

    def _handle(self, m: dict) -> None:
        kind = m.get("t")
        if kind == "reply":
            waiting = self._pending.get(m.get("id", -1))
            if waiting is not None:
                waiting[1].append(m)
                waiting[0].set()
            return
        with self.lock:
            if kind == "runs":
                now = time.monotonic()
                for row in m.get("set", ()):
                    self.runs[row["id"]] = row
                    self.received_at[row["id"]] = now
                for run_id in m.get("del", ()):
                    self.runs.pop(run_id, None)
                if "drained" in m:
                    self.drained = bool(m["drained"])
                if "problem" in m:
                    self.problem = m["problem"]
            elif kind == "gm":
                self.gpu_meta = {"gpus": m.get("gpus", []), "reason": m.get("reason", "")}
                known = {g["index"] for g in self.gpu_meta["gpus"]}
                self.gpu_now = {i: v for i, v in self.gpu_now.items() if i in known}
            elif kind == "g":
                for index, *values in m.get("r", ()):
                    self.gpu_now[index] = values
                    util, mem = self.gpu_history.setdefault(
                        index, (deque(maxlen=HISTORY), deque(maxlen=HISTORY)))
                    util.append(values[0])
                    mem.append(values[1])
            elif kind == "run":
                fields = {k: v for k, v in m.items() if k not in ("t", "id")}
                self.watched[m["id"]] = {**self.watched.get(m["id"], {}), **fields}
