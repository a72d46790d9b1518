"""`cream feed`: this data home as JSON lines on stdout, requests read from stdin. A dashboard
on another box runs it over ssh (`cream_engine.hosts.HostLink`); nothing listens on a port.

What it writes, one JSON object per line, each with its kind in "t":
- `hello`  first: the feed protocol, this cream's version, the host and data home;
- `runs`   the runs that changed since the last one sent (a row is sent again only when
           something but its elapsed time and ETA changed: the reader ages those), the ids
           gone, the queue's drain flag, or the home's empty state or error (`problem`);
- `gm`     the GPUs (uuid, name, memory, processes and their runs) when that changes;
- `g`      the readings [index, util %, memory used MiB, °C, W] at a fixed rate (`--gpu-every`);
- `run`    for the watched run (the run screen in front over there): its fields that changed;
- `reply`  to a request: {"id", "ok", "line"} (an action), or the compare parts;
- `hb`     when nothing else was written for `HEARTBEAT_S`, so the reader knows the link lives.

What it reads: {"op": "watch", "run", "buckets"}, {"op": "act", "id", "name", "args"} (the
dashboard's queue actions, run here as they run locally), {"op": "compare", "id", "runs"},
{"op": "prompts", "id", "run", "iteration", "prompt"} (the drill-down: an iteration's prompts,
or one prompt in full when "prompt" names it; replied as {"name", "iterations", "data"}).
It ends when stdin closes (the ssh connection went) or on SIGTERM/SIGHUP.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from cream_engine import hosts
from cream_engine.errors import CreamError
from cream_engine.gpu import read_gpus
from cream_tui import actions, prompt_data
from cream_tui.data import DataSource

AGED = ("elapsed", "eta")   # fields the reader ages itself: a change there alone is not sent


def _rounded(value: Any, digits: int = 0) -> Any:
    if value is None:
        return None
    return round(value) if digits == 0 else round(value, digits)


class Feed:
    def __init__(self, home: Path, out: IO[bytes], *, poll_s: float = 1.0, gpu_s: float = 1.0,
                 clock: Any = time.time):
        self.home = home
        self.out = out
        self.poll_s, self.gpu_s = max(poll_s, 0.1), max(gpu_s, 0.1)
        self.clock = clock
        self.source = DataSource(home, read_gpus)
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self._write = threading.Lock()
        self._last_write = 0.0
        self._rows: dict[str, str] = {}          # run id -> what was sent (without AGED)
        self._drained: bool | None = None
        self._problem: str | None = None
        self._gpu_meta: Any = None
        self._watch: tuple[str, int] | None = None
        self._watch_sent: dict[str, Any] = {}

    # -- writing -------------------------------------------------------------------------

    def send(self, message: dict) -> None:
        data = (json.dumps(message, separators=(",", ":"), default=str) + "\n").encode()
        with self._write:
            try:
                while data:  # (an unbuffered pipe may take part of it)
                    data = data[self.out.write(data) or 0:]
                self.out.flush()
            except (OSError, ValueError):  # the reader went: nothing to write for
                self.stopping.set()
                self.wake.set()
            self._last_write = time.monotonic()

    def hello(self) -> None:
        self.send({"t": "hello", "protocol": hosts.PROTOCOL, "version": hosts.version(),
                   "host": socket.gethostname(), "home": str(self.home)})

    # -- what changed --------------------------------------------------------------------

    def poll_home(self, now: float) -> None:
        data = self.source.home_data(now)
        message: dict[str, Any] = {"t": "runs"}
        if data.problem != self._problem:
            self._problem = data.problem
            message["problem"] = data.problem
        rows = {r.id: asdict(r) for r in data.runs}
        changed = []
        for run_id, row in rows.items():
            key = json.dumps({k: v for k, v in row.items() if k not in AGED}, default=str)
            if self._rows.get(run_id) != key:
                self._rows[run_id] = key
                changed.append(row)
        gone = [run_id for run_id in self._rows if run_id not in rows]
        for run_id in gone:
            del self._rows[run_id]
        if changed:
            message["set"] = changed
        if gone:
            message["del"] = gone
        if data.drained != self._drained:
            self._drained = message["drained"] = data.drained
        if len(message) > 1:
            self.send(message)

    def poll_gpus(self, now: float) -> None:
        state = self.source.gpu_data(now)
        meta = {"gpus": [{"index": g.index, "uuid": g.uuid, "name": g.name,
                          "memory_total_mb": _rounded(g.memory_total_mb),
                          "processes": [[p.pid, _rounded(p.used_memory_mb), p.run_id,
                                         p.run_name] for p in g.processes]}
                         for g in state.gpus],
                "reason": state.reason}
        if meta != self._gpu_meta:
            self._gpu_meta = meta
            self.send({"t": "gm", **meta})
        if state.gpus:
            self.send({"t": "g", "r": [[g.index, _rounded(g.utilization),
                                        _rounded(g.memory_used_mb), _rounded(g.temperature_c),
                                        _rounded(g.power_w, 1)] for g in state.gpus]})

    def poll_watched(self, now: float) -> None:
        watch = self._watch
        if watch is None:
            return
        run_id, buckets = watch
        fields = asdict(self.source.run_data(run_id, now, buckets))
        changed = {k: v for k, v in fields.items() if self._watch_sent.get(k, ...) != v}
        if changed and watch == self._watch:
            self._watch_sent.update(changed)
            self.send({"t": "run", "id": run_id, **changed})

    # -- requests ------------------------------------------------------------------------

    def handle(self, request: dict) -> None:
        op = request.get("op")
        if op == "watch":
            run = request.get("run")
            self._watch = None if run is None else (str(run), int(request.get("buckets") or 60))
            self._watch_sent = {}
            self.wake.set()
        elif op in ("act", "compare", "prompts"):  # (a submit checks a config for seconds)
            threading.Thread(target=self._answer, args=(request,), daemon=True).start()

    def _answer(self, request: dict) -> None:
        reply: dict[str, Any] = {"t": "reply", "id": request.get("id")}
        try:
            if request["op"] == "compare":
                reply.update(ok=True, runs=actions.compare_parts(self.home,
                                                                 list(request["runs"])))
            elif request["op"] == "prompts":
                reply.update(ok=True, **prompt_data.answer(
                    self.home, str(request["run"]), int(request["iteration"]),
                    request.get("prompt")))
            else:
                fn = actions.BY_NAME[request["name"]]
                reply.update(ok=True, line=fn(self.home, *request.get("args", ())))
        except CreamError as e:
            reply.update(ok=False, line=e.line)
        except Exception as e:  # noqa: BLE001 - a line for the dashboard, never silence
            reply.update(ok=False, line=f"failed on {socket.gethostname()}: "
                                        f"{type(e).__name__}: {e}")
        self.send(reply)
        self.wake.set()

    def read_requests(self, inp: IO[bytes]) -> None:
        """Requests, a line each, until stdin closes (the connection went). Read unbuffered:
        a buffered reader's lock, held by this thread at exit, aborts the interpreter."""
        pending = b""
        read = getattr(inp, "read1", inp.read)  # (what is there, not a full 64 KiB)
        while True:
            try:
                chunk = read(65536)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                try:
                    request = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(request, dict):
                    self.handle(request)
        self.stopping.set()
        self.wake.set()

    # -- the loop ------------------------------------------------------------------------

    def run(self, inp: IO[bytes]) -> int:
        self.hello()
        threading.Thread(target=self.read_requests, args=(inp,), daemon=True).start()
        next_poll = next_gpu = 0.0
        while not self.stopping.is_set():
            mono = time.monotonic()
            if self.wake.is_set() or mono >= next_poll:
                self.wake.clear()
                now = self.clock()
                try:
                    self.poll_home(now)
                    self.poll_watched(now)
                except Exception:  # noqa: BLE001 - a store mid-migration: read it again
                    self.source.reset()
                next_poll = mono + self.poll_s
            if mono >= next_gpu:
                self.poll_gpus(self.clock())
                next_gpu = mono + self.gpu_s
            if time.monotonic() - self._last_write >= hosts.HEARTBEAT_S:
                self.send({"t": "hb"})
            self.wake.wait(max(min(next_poll, next_gpu, self._last_write + hosts.HEARTBEAT_S)
                               - time.monotonic(), 0.01))
        self.source.close()
        return 0


def serve(home: Path, poll_s: float = 1.0, gpu_s: float = 1.0) -> int:
    """Stream `home` on stdout until stdin closes or a signal ends it. Both are used
    unbuffered (`os.read`/`os.write` underneath): no lock of a buffered stream is left held
    by a thread when the interpreter exits."""
    out = open(sys.stdout.fileno(), "wb", buffering=0, closefd=False)  # noqa: SIM115
    inp = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115
    feed = Feed(home, out, poll_s=poll_s, gpu_s=gpu_s)

    def stop(*_: Any) -> None:
        feed.stopping.set()
        feed.wake.set()

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    return feed.run(inp)
