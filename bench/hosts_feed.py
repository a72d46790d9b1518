"""What a dashboard over other boxes costs while nothing changes: the bytes each host's
`cream feed` sends, and the CPU of `cream tui` over three hosts (and of the ssh and feed
processes behind it).

By default everything is local: a private OpenSSH server on 127.0.0.1 (`tests/sshd.py`) serves
three "hosts", each its own data home filled like the dashboard tests' (five runs, one of them
"running" in the store, nothing actually running, so nothing changes): `gpu8` with 8 fake GPUs,
`gpu2` with 2, `nogpu` with none. Measured:

1. bytes: one `HostLink` per host (the dashboard's reader, `ssh HOST cream feed`), warmed up,
   then its `bytes_in` and `lines_in` over a window: bytes/s and lines/s per host, by message
   kind, and what the ssh client read from the socket (the encrypted stream, SSH framing and
   keepalives included: /proc/<ssh>/io); the first connection's bytes (hello + the full
   snapshot: the runs and the GPUs); the far `cream feed` processes' CPU;
2. CPU: the real `cream tui --host gpu8 --host gpu2 --host nogpu` in tmux (120x40, the hosts in
   a temp user config), warmed up, then utime + stime from /proc over the window, as % of one
   core: the dashboard, its ssh clients, and on the far side the `cream feed` processes and
   the per-connection sshd processes; whether the screen showed all three hosts up.

    .venv/bin/python bench/hosts_feed.py [--seconds 30]
    .venv/bin/python bench/hosts_feed.py --host gpu1 --host gpu2 [--tui]   # real hosts

With `--host`, the hosts come from your own user config and ssh (as `cream tui --host` reads
them); only the bytes are measured, and the dashboard's CPU too with `--tui` (the far side's
CPU is not read there).

Targets (the hosts issue): a few hundred bytes per host per second while nothing changes; the
dashboard under 5% of one core with 3 hosts. Not a timed test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cream_engine import hosts, userconfig
from cream_engine.hosts import HostLink, HostSpec
from tests.slurm_cluster import descendants
from tests.tui.fixtures import write_store

TICKS = os.sysconf("SC_CLK_TCK")
FAKE = {"utilization": 40, "memory_used_mb": 1000, "memory_total_mb": 80000,
        "temperature_c": 50, "power_w": 200}
BOXES = {"gpu8": 8, "gpu2": 2, "nogpu": 0}     # host name -> fake GPUs
SHELLS = ("sh", "bash", "dash", "zsh")


# -- /proc ----------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float | None:
    """utime + stime of `pid`, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def read_bytes(pid: int) -> int | None:
    """Bytes `pid` has read through read(2) and friends (rchar), None once it is gone."""
    try:
        with open(f"/proc/{pid}/io") as fh:
            for line in fh:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def argv_of(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


def env_of(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            pairs = [a.decode(errors="replace").partition("=") for a in fh.read().split(b"\0")]
    except OSError:
        return {}
    return {k: v for k, _, v in pairs if k}


def comm_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


class CpuWindow:
    """CPU seconds of groups of processes between `start()` and `stop()`; a process counts
    only if it lived through the whole window (the set is read at the start)."""

    def __init__(self, groups: dict[str, list[int]]):
        self.groups = groups

    def start(self) -> CpuWindow:
        self.t0 = time.monotonic()
        self.cpu0 = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        return self

    def stop(self) -> dict[str, float]:
        """Group -> % of one core over the window."""
        wall = time.monotonic() - self.t0
        out = {}
        for name, pids in self.groups.items():
            used = 0.0
            for pid in pids:
                before, after = self.cpu0.get(pid), cpu_seconds(pid)
                if before is not None and after is not None:
                    used += after - before
            out[name] = 100 * used / wall
        return out


def far_side(server: Any, homes: dict[str, str]) -> tuple[dict[str, list[int]], list[int]]:
    """The sshd's `cream feed` processes by host (told apart by their CREAM_HOME), and the
    other processes under the sshd listener (the per-connection sshd, a shell)."""
    feeds: dict[str, list[int]] = {name: [] for name in homes}
    by_home = {home: name for name, home in homes.items()}
    others = []
    listener = server.proc.pid if server.proc is not None else -1
    for pid in server.pids():
        argv = argv_of(pid)
        if pid == listener:
            continue
        if "feed" in argv and Path(argv[0]).name not in SHELLS:
            name = by_home.get(env_of(pid).get("CREAM_HOME", ""))
            if name is not None:
                feeds[name].append(pid)
                continue
        others.append(pid)
    return feeds, others


# -- the byte counts ------------------------------------------------------------------------------

class CountingLink(HostLink):
    """A HostLink that also tallies the bytes of each message kind (a message's line is what
    the feed wrote: compact JSON, so writing it again the same way gives its length) and when
    the first snapshot (hello, runs, GPUs) was complete."""

    def __init__(self, spec: HostSpec, **kw: Any):
        super().__init__(spec, **kw)
        self.kinds: Counter[str] = Counter()
        self.kind_lines: Counter[str] = Counter()
        self.first: dict[str, int] = {}     # kind -> bytes of its first message
        self.started = time.monotonic()
        self.snapshot_s: float | None = None

    def _tally(self, m: dict) -> None:
        kind = str(m.get("t"))
        size = len(json.dumps(m, separators=(",", ":"))) + 1
        self.kinds[kind] += size
        self.kind_lines[kind] += 1
        self.first.setdefault(kind, size)
        if self.snapshot_s is None and {"hello", "runs", "gm"} <= self.first.keys():
            self.snapshot_s = time.monotonic() - self.started

    def _hello(self, message: dict) -> bool:
        self._tally(message)
        return super()._hello(message)

    def _handle(self, m: dict) -> None:
        self._tally(m)
        super()._handle(m)

    def counts(self) -> tuple[int, int, Counter[str], Counter[str], int | None]:
        with self.lock:
            proc = self._proc
            return (self.bytes_in, self.lines_in, Counter(self.kinds), Counter(self.kind_lines),
                    proc.pid if proc is not None else None)


def wait_up(links: list[CountingLink], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(link.status()[0] == "up" and link.snapshot_s is not None for link in links):
            return
        time.sleep(0.1)
    states = ", ".join(f"{link.spec.name}: {' '.join(link.status())}" for link in links)
    raise SystemExit(f"not every host came up in {timeout:.0f}s ({states})")


def measure_bytes(specs: list[HostSpec], seconds: float, warmup: float,
                  server: Any | None, homes: dict[str, str]) -> dict[str, Any]:
    links = [CountingLink(spec) for spec in specs]   # the dashboard's defaults: 1 s, 1 s
    try:
        for link in links:
            link.start()
        wait_up(links)
        time.sleep(warmup)
        before = {link.spec.name: link.counts() for link in links}
        ssh_pids = {name: c[4] for name, c in before.items()}
        wire0 = {name: read_bytes(pid) if pid else None for name, pid in ssh_pids.items()}
        groups = {f"ssh {name}": [pid] for name, pid in ssh_pids.items() if pid}
        if server is not None:
            feeds, _ = far_side(server, homes)
            groups.update({f"feed {name}": pids for name, pids in feeds.items()})
        window = CpuWindow(groups).start()
        time.sleep(seconds)
        cpu = window.stop()
        wall = time.monotonic() - window.t0
        after = {link.spec.name: link.counts() for link in links}
        rows = {}
        for link in links:
            name = link.spec.name
            b0, l0, k0, _, pid0 = before[name]
            b1, l1, k1, kl1, pid1 = after[name]
            wire1 = read_bytes(pid0) if pid0 else None
            rows[name] = {
                "bytes_s": (b1 - b0) / wall, "lines_s": (l1 - l0) / wall,
                "kinds_s": {k: (k1[k] - k0.get(k, 0)) / wall for k in k1 if k1[k] > k0.get(k, 0)},
                "wire_s": (wire1 - wire0[name]) / wall
                if wire1 is not None and wire0[name] is not None and pid0 == pid1 else None,
                "first": {k: link.first[k] for k in ("hello", "runs", "gm") if k in link.first},
                "snapshot_s": link.snapshot_s, "reconnects": link.connects - 1,
                "runs": len(link.runs), "gpus": len(link.gpu_meta.get("gpus", [])),
                "ssh_cpu": cpu.get(f"ssh {name}"), "feed_cpu": cpu.get(f"feed {name}"),
                "g_per_s": (kl1["g"] - before[name][3].get("g", 0)) / wall,
            }
        return {"rows": rows, "wall": wall}
    finally:
        for link in links:
            link.close()


# -- the dashboard in tmux ------------------------------------------------------------------------

class Tmux:
    def __init__(self, tmux: str, env: dict[str, str]):
        self.base = [tmux, "-u", "-L", f"cream-bench-hosts-{os.getpid()}", "-f", "/dev/null"]
        self.env = env
        self.started = False

    def __call__(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], env=self.env, capture_output=True,
                              text=True, timeout=30, check=False).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "bench")

    def kill(self) -> None:
        if self.started:
            self("kill-server")
            self.started = False


def all_up(screen: str, names: list[str]) -> bool:
    """Every host named on the screen, none of them said to be down or connecting."""
    return all(n in screen for n in names) and not any(
        f"{n} {state}" in screen for n in names
        for state in ("down", "connecting", "slow", "mismatch"))


def measure_tui(names: list[str], seconds: float, warmup: float, env: dict[str, str],
                server: Any | None, homes: dict[str, str], started: list[int]) -> dict[str, Any]:
    tmux_bin = shutil.which("tmux")
    if tmux_bin is None:
        raise SystemExit("bench/hosts_feed.py needs tmux for the dashboard's CPU "
                         "(apt-get install -y tmux)")
    tmux = Tmux(tmux_bin, env)
    cream = Path(sys.executable).parent / "cream"
    command = "exec " + shlex.join([str(cream), "tui", *[a for n in names for a in ("--host", n)]])
    try:
        tmux("new-session", "-d", "-s", "bench", "-x", "120", "-y", "40", command)
        tmux.started = True
        pid = int(tmux("display-message", "-p", "-t", "bench", "#{pane_pid}").strip())
        started.append(pid)
        t0 = time.monotonic()
        while not all_up(tmux.screen(), names):
            if time.monotonic() - t0 > 60:
                break   # measured anyway: the screen check below says what it showed
            time.sleep(0.2)
        up_after = time.monotonic() - t0
        time.sleep(warmup)
        ssh = [p for p in descendants(pid) if comm_of(p) == "ssh"]
        started.extend(ssh)
        groups: dict[str, list[int]] = {"dashboard": [pid], "ssh clients": ssh}
        if server is not None:
            feeds, others = far_side(server, homes)
            groups["far feeds"] = [p for pids in feeds.values() for p in pids]
            groups["far sshd"] = others
        window = CpuWindow(groups).start()
        time.sleep(seconds)
        cpu = window.stop()
        screen = tmux.screen()
        return {"cpu": cpu, "screen": screen, "shown": {n: n in screen for n in names},
                "all_up": all_up(screen, names), "up_after": up_after, "ssh": len(ssh),
                "feeds": len(groups.get("far feeds", [])),
                "far_other": len(groups.get("far sshd", []))}
    finally:
        tmux.kill()


# -- setup and report -----------------------------------------------------------------------------

def private_hosts(tmp: Path, server: Any) -> tuple[list[HostSpec], dict[str, str], Path]:
    """Start `server`; one spec per box, each box's data home, and a user config naming
    them."""
    cream = str(Path(sys.executable).parent / "cream")
    homes: dict[str, str] = {}
    client_env: dict[str, dict[str, str]] = {}
    for name, count in BOXES.items():
        home = tmp / "homes" / name
        # (its worker's GPU samples two minutes old, as no worker runs: each feed reads its
        # own GPUs, here the fake ones, instead of the store's two sampled boards)
        write_store(home, now=time.time() - 120)
        fake = tmp / f"gpus-{name}.json"
        fake.write_text(json.dumps([FAKE] * count))
        homes[name] = str(home.absolute())
        client_env[name] = {"CREAM_HOME": homes[name], "CREAM_FAKE_GPUS": str(fake)}
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            client_env[name]["PYTHONDONTWRITEBYTECODE"] = "1"
    server.start()
    server.write_client_config(client_env)
    config = tmp / "config.toml"
    config.write_text("".join(f'[hosts.{name}]\ncommand = "{cream}"\n\n' for name in BOXES))
    return [HostSpec(name, name, cream) for name in BOXES], homes, config


def cores() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{usable} cores usable of {os.cpu_count()}" + (f", {model}" if model else "")


def fmt(value: float | None, spec: str = "5.1f", unit: str = "") -> str:
    if value is None:
        return f"{'n/a':>{len(f'{0:{spec}}') + len(unit)}}"
    return f"{value:{spec}}{unit}"


def report_bytes(result: dict[str, Any], boxes: dict[str, int] | None) -> None:
    rows = result["rows"]
    print(f"\n1. bytes from `cream feed`, nothing changing, over {result['wall']:.1f} s "
          "(the dashboard's rates: store poll 1 s, GPU readings every 1 s, heartbeat 2 s)")
    print(f"  {'host':8} {'GPUs':>4} {'runs':>4} {'bytes/s':>8} {'lines/s':>7} "
          f"{'wire B/s':>8} {'first conn.':>11} {'snapshot':>8} {'ssh CPU':>7} {'feed CPU':>8}"
          "  by kind (B/s)")
    for name, r in rows.items():
        first = sum(r["first"].values())
        kinds = " ".join(f"{k} {v:.0f}" for k, v in sorted(r["kinds_s"].items()))
        print(f"  {name:8} {r['gpus']:4d} {r['runs']:4d} {r['bytes_s']:8.0f} {r['lines_s']:7.2f} "
              f"{fmt(r['wire_s'], '8.0f')} {first:9d} B {fmt(r['snapshot_s'], '6.2f', ' s')} "
              f"{fmt(r['ssh_cpu'], '6.2f', '%')} {fmt(r['feed_cpu'], '7.2f', '%')}  {kinds}")
        if r["reconnects"]:
            print(f"    ({r['reconnects']} reconnect(s) while measuring)")
    total = sum(r["bytes_s"] for r in rows.values())
    wire = [r["wire_s"] for r in rows.values()]
    print(f"  {'total':8} {'':4} {'':4} {total:8.0f} {sum(r['lines_s'] for r in rows.values()):7.2f} "
          f"{fmt(sum(wire) if None not in wire else None, '8.0f')} "
          f"{sum(sum(r['first'].values()) for r in rows.values()):9d} B")
    print("  first conn. = hello + the first `runs` (every run) + the first `gm` (the GPUs): "
          + "; ".join(f"{n}: " + " + ".join(f"{k} {v}" for k, v in r["first"].items())
                      for n, r in rows.items()))
    print("  wire B/s = what the ssh client read from its socket (encrypted, SSH framing and "
          "ServerAlive keepalives included)")


def report_tui(result: dict[str, Any], names: list[str], private: bool, show: bool) -> None:
    cpu = result["cpu"]
    print(f"\n2. `cream tui --host {' --host '.join(names)}` in tmux 120x40, home screen, "
          "nothing changing")
    lines = [("dashboard (cream tui)", cpu["dashboard"], "(target < 5%)"),
             (f"its ssh clients ({result['ssh']})", cpu["ssh clients"], "(together)")]
    if private:
        lines += [(f"far side: cream feed ({result['feeds']})", cpu["far feeds"], "(together)"),
                  (f"far side: sshd sessions ({result['far_other']})", cpu["far sshd"],
                   "(together)")]
    for label, value, note in lines:
        print(f"  {label:30}: {value:5.2f}% of one core {note}")
    shown = ", ".join(f"{n} {'shown' if ok else 'NOT SHOWN'}" for n, ok in result["shown"].items())
    print(f"  screen: {shown}; all up: {'yes' if result['all_up'] else 'NO'} "
          f"(after {result['up_after']:.1f} s)")
    if show or not result["all_up"]:
        print("  --- the screen at the end:\n" + result["screen"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="each measuring window")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before each window")
    parser.add_argument("--host", action="append", default=[], metavar="NAME",
                        help="measure this host of your user config (repeatable) instead of "
                             "the private sshd")
    parser.add_argument("--tui", action="store_true",
                        help="with --host: measure the dashboard's CPU too")
    parser.add_argument("--show-screen", action="store_true",
                        help="print the dashboard's screen at the end of its window")
    args = parser.parse_args()

    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)   # (even where it was ignored: a background job)
    began = time.monotonic()
    server = None
    started: list[int] = []     # the dashboard and its ssh clients, ended by PID if they linger
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cream-bench-hosts-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
            env.update(TERM="xterm-256color", LANG="C.UTF-8", COLORTERM="truecolor")
            if args.host:
                known = userconfig.host_specs()
                specs = [hosts.resolve(n, known) for n in dict.fromkeys(args.host)]
                specs = [s for s in specs if s is not None]   # (`local` has no feed)
                homes: dict[str, str] = {}
                print(f"real hosts: {', '.join(f'{s.name} (ssh {s.ssh}, {s.command})' for s in specs)}")
            else:
                from tests.sshd import SshServer, unavailable_reason

                reason = unavailable_reason()
                if reason:
                    raise SystemExit(f"bench/hosts_feed.py: no private sshd here: {reason} "
                                     "(or measure real hosts with --host NAME)")
                t0 = time.monotonic()
                server = SshServer(tmp / "sshd")
                specs, homes, config = private_hosts(tmp, server)
                os.environ[hosts.SSH_ENV] = server.ssh_command   # (the HostLinks read it)
                env.update({hosts.SSH_ENV: server.ssh_command,
                            userconfig.ENV: str(config),
                            "CREAM_HOME": str(tmp / "local-home")})   # (not shown: --host only)
                env = {k: v for k, v in env.items() if k != "CREAM_FAKE_GPUS"}
                print(f"private sshd on 127.0.0.1:{server.port}, three data homes "
                      f"({', '.join(f'{n}: {c} fake GPUs' for n, c in BOXES.items())}), "
                      f"set up in {time.monotonic() - t0:.1f} s")
            figures["bytes"] = measure_bytes(specs, args.seconds, args.warmup, server, homes)
            report_bytes(figures["bytes"], None)
            names = [s.name for s in specs]
            if server is not None or args.tui:
                figures["tui"] = measure_tui(names, args.seconds, args.warmup, env, server,
                                             homes, started)
                report_tui(figures["tui"], names, server is not None, args.show_screen)
        except KeyboardInterrupt:
            print("\ninterrupted: cleaning up", file=sys.stderr)
            return 130
        finally:
            if server is not None:
                server.stop()
            for pid in started:          # (the tmux server is gone: anything left is stray)
                if cpu_seconds(pid) is not None and comm_of(pid) in ("ssh", "python", "cream",
                                                                      "python3"):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGTERM)

    rows = figures["bytes"]["rows"]
    print(f"\nsummary ({cores()}; {args.seconds:g} s windows, the whole bench "
          f"{time.monotonic() - began:.0f} s)")
    print(f"  {'figure':46} {'value':>12}   goal")
    for name, r in rows.items():
        label = f"bytes/s from {name} ({r['gpus']} GPUs)"
        print(f"  {label:46} {r['bytes_s']:10.0f} B   a few hundred")
    print(f"  {'bytes/s, all hosts':46} {sum(r['bytes_s'] for r in rows.values()):10.0f} B")
    print(f"  {'first connection, all hosts (hello + snapshot)':46} "
          f"{sum(sum(r['first'].values()) for r in rows.values()):10d} B")
    if "tui" in figures:
        cpu = figures["tui"]["cpu"]
        print(f"  {f'dashboard CPU, {len(rows)} host(s)':46} {cpu['dashboard']:10.2f} %   < 5% "
              "of one core")
        print(f"  {'its ssh clients CPU':46} {cpu['ssh clients']:10.2f} %")
        if "far feeds" in cpu:
            print(f"  {'far cream feed CPU (all hosts)':46} {cpu['far feeds']:10.2f} %")
        print(f"  {'all hosts shown and up':46} {'yes' if figures['tui']['all_up'] else 'NO':>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
