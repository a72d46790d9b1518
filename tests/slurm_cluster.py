"""A real single-node Slurm cluster for tests, private to one temp folder.

`SlurmCluster(folder).start()` writes its own munge key, starts its own `munged` (own socket,
pid, log and seed files), writes a `slurm.conf` (spare ports, state and spool in the folder,
`AuthInfo=socket=...` pointing at that munged) and starts `slurmctld -D` and `slurmd -D` as
child processes; it returns once `sinfo` shows the node idle. Every Slurm client call must be
run with `cluster.env` (it sets `SLURM_CONF`, and unsets the `SLURM_*` variables a surrounding
job could have set). `stop()` ends the daemons by PID (SIGTERM, then SIGKILL) and also every
process that carries this cluster's SLURM_CONF in its environment (slurmstepd, job scripts and
their orphans: see `job_pids`), so nothing is left behind; `stop_slurmctld()` /
`start_slurmctld()` take only the controller down and up again (state survives in
StateSaveLocation), for "controller unreachable" tests.

Settings that differ from Slurm's defaults, for test speed: MessageTimeout=5 (a client call
to a stopped controller fails after about 4 s instead of 9 s). Others stay at Slurm's
defaults but can be changed: `cred_expire` (a requeued job may start again only after this
many seconds, 120 by default; or `scontrol update JobId=ID StartTime=now`), `min_job_age`
(finished jobs stay in `squeue --states=all` for MinJobAge to MinJobAge+30 s), and
`extra_conf` (lines appended to slurm.conf, e.g. `EnforcePartLimits=ALL` or
`SchedulerParameters=batch_sched_delay=0`).

Needs root (SlurmUser=root, munged's key ownership) and Debian's `slurm-wlm` and `munge`
packages (`scripts/setup.sh` installs them where it can); `unavailable_reason()` says why a
machine cannot run it. Nothing global is touched: no /etc/munge key, no /run socket, no
systemd unit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sinfo", "squeue", "sbatch", "scontrol", "scancel", "srun")
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def _which(name: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN)
    return shutil.which(name, path=path)


def unavailable_reason() -> str | None:
    """Why a Slurm cluster cannot be started here, or None where it can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "a private Slurm cluster needs root (SlurmUser=root, munged key ownership)"
    missing = [n for n in (*DAEMONS, *CLIENTS) if _which(n) is None]
    if missing:
        return (f"Slurm/munge not installed (missing {', '.join(missing)}): "
                "apt-get install slurm-wlm munge, or run scripts/setup.sh as root")
    return None


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free right now (bound to port 0, then released)."""
    socks, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(("", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _children() -> dict[int, list[int]]:
    """ppid -> child pids, for every process in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """All live descendants of `pid` (children first)."""
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _ancestors(pid: int) -> list[int]:
    """`pid` and its parents up to init."""
    out = []
    while pid > 1 and pid not in out:
        out.append(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return out


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read().split(b"\0")
    except OSError:
        return False


def kill_pids(pids: list[int], wait: float = 5.0) -> None:
    """SIGTERM each pid, wait up to `wait` seconds, then SIGKILL what is left."""
    pids = [p for p in pids if p > 1 and p != os.getpid()]
    for sig, grace in ((signal.SIGTERM, wait), (signal.SIGKILL, 2.0)):
        live = [p for p in pids if _alive(p)]
        if not live:
            return
        for p in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in live):
            time.sleep(0.05)


class SlurmCluster:
    """One node (`hostname -s`, `cpus` CPUs), partitions `debug` (default) and `long`."""

    def __init__(self, folder: Path | str, cpus: int = 2, memory_mb: int = 2000,
                 min_job_age: int = 300, kill_wait: int = 5, message_timeout: int = 5,
                 cred_expire: int = 120, name: str = "creamtest", extra_conf: str = ""):
        self.folder = Path(folder).resolve()
        self.cpus, self.memory_mb = cpus, memory_mb
        self.min_job_age, self.kill_wait, self.cluster_name = min_job_age, kill_wait, name
        self.message_timeout, self.cred_expire = message_timeout, cred_expire
        self.extra_conf = extra_conf
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.folder / "slurm.conf"
        self.state_dir = self.folder / "state"
        self.spool_dir = self.folder / "spool"
        self.log_dir = self.folder / "log"
        self.munge_dir = self.folder / "munge"
        self.jobs_dir = self.folder / "jobs"   # a place for tests' scripts and outputs
        self.procs: dict[str, subprocess.Popen] = {}
        self.munged_pid: int | None = None
        self._socket_dir: Path | None = None
        self.ctld_port = self.slurmd_port = 0
        self.started_s = self.stopped_s = 0.0

    # -- environment ----------------------------------------------------------------------------
    @property
    def munge_socket(self) -> Path:
        return (self._socket_dir or self.munge_dir) / "munge.sock"

    @property
    def env(self) -> dict[str, str]:
        """os.environ with SLURM_CONF set for this cluster, other SLURM_* removed, sbin on PATH."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_",
                                                                          "SQUEUE_", "SRUN_"))}
        env["SLURM_CONF"] = str(self.conf)
        parts = env.get("PATH", "").split(os.pathsep)
        env["PATH"] = os.pathsep.join(parts + [d for d in SBIN if d not in parts])
        return env

    def run(self, *args: str, timeout: float = 30, check: bool = False,
            **kw) -> subprocess.CompletedProcess:
        """Run a Slurm client (`cluster.run("squeue", "-h")`) with this cluster's env."""
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=check, **kw)

    def sbatch(self, *args: str) -> str:
        """Submit (`--parsable` added) and return the job id."""
        out = self.run("sbatch", "--parsable", f"--chdir={self.jobs_dir}", *args, check=True)
        return out.stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job -o ID` as a dict ({} once the job is purged). Split on blanks:
        a value with spaces (a JobName) keeps only its first word."""
        out = self.run("scontrol", "show", "job", "-o", str(job_id))
        fields: dict[str, str] = {}
        for token in out.stdout.split():
            key, sep, value = token.partition("=")
            if sep:
                fields[key] = value
        return fields

    def wait_job(self, job_id: str, states: tuple[str, ...] = ("COMPLETED", "FAILED",
                 "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                 "BOOT_FAIL", "DEADLINE"),
                 timeout: float = 60) -> dict[str, str]:
        """Poll until the job's JobState is one of `states`; return its fields."""
        deadline = time.monotonic() + timeout
        while True:
            fields = self.job(job_id)
            if fields.get("JobState") in states:
                return fields
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not in {states} after {timeout}s: {fields}")
            time.sleep(0.2)

    # -- configuration --------------------------------------------------------------------------
    def _write_files(self) -> None:
        for d in (self.state_dir, self.spool_dir, self.log_dir, self.munge_dir, self.jobs_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.munge_dir, 0o700)
        if len(str(self.munge_dir / "munge.sock")) > 100:   # AF_UNIX paths: 108 bytes at most
            self._socket_dir = Path(tempfile.mkdtemp(prefix="cream-munge-"))
        key = self.munge_dir / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self.ctld_port, self.slurmd_port = free_ports(2)
        f = self.folder
        self.conf.write_text(f"""\
# written by tests/slurm_cluster.py
ClusterName={self.cluster_name}
SlurmctldHost={self.node}
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket},cred_expire={self.cred_expire}
StateSaveLocation={self.state_dir}
SlurmdSpoolDir={self.spool_dir}
SlurmctldPidFile={f}/slurmctld.pid
SlurmdPidFile={f}/slurmd.pid
SlurmctldLogFile={self.log_dir}/slurmctld.log
SlurmdLogFile={self.log_dir}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge={self.min_job_age}
KillWait={self.kill_wait}
JobRequeue=1
SlurmctldTimeout=30
SlurmdTimeout=60
MessageTimeout={self.message_timeout}
InactiveLimit=0
Waittime=0
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
PartitionName=long Nodes={self.node} Default=NO MaxTime=INFINITE State=UP
{self.extra_conf}""")

    # -- daemons --------------------------------------------------------------------------------
    def _start_munged(self) -> None:
        m = self.munge_dir
        pid_file = m / "munged.pid"
        pid_file.unlink(missing_ok=True)
        # --force: run although the temp folder's parents are private to root (pytest's are)
        subprocess.run([_which("munged"), "--force", f"--key-file={m / 'munge.key'}",
                        f"--socket={self.munge_socket}", f"--pid-file={pid_file}",
                        f"--log-file={self.log_dir / 'munged.log'}",
                        f"--seed-file={m / 'munged.seed'}"],
                       check=True, capture_output=True, text=True, timeout=30)
        self.munged_pid = int(pid_file.read_text().strip())

    def _spawn(self, name: str) -> None:
        with open(self.log_dir / f"{name}.out", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [_which(name), "-D", "-f", str(self.conf)], env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    def _wait(self, what: str, ok, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited ({p.returncode}) while waiting for {what}"
                                       f": {self.log_tail(name)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Slurm: no {what} after {timeout}s; "
                                   f"{self.log_tail('slurmctld')}\n{self.log_tail('slurmd')}")
            time.sleep(0.2)

    def controller_up(self) -> bool:
        try:
            return self.run("scontrol", "ping", timeout=15).stdout.count("is UP") > 0
        except subprocess.TimeoutExpired:
            return False

    def node_state(self) -> str:
        try:
            out = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", timeout=15)
        except subprocess.TimeoutExpired:
            return ""
        return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""

    def start(self, timeout: float = 30, attempts: int = 3) -> SlurmCluster:
        """Start munged, slurmctld and slurmd; return once the node is idle. A daemon that
        exits at once (a spare port taken meanwhile) is retried on fresh ports."""
        t0 = time.monotonic()
        for attempt in range(1, attempts + 1):
            self._write_files()
            try:
                self._start_munged()
                self._spawn("slurmctld")
                self._wait("slurmctld", self.controller_up, timeout)
                self._spawn("slurmd")
                self._wait("idle node", lambda: self.node_state().rstrip("*~#$@") in (
                    "idle", "mixed", "allocated"), timeout)
                break
            except RuntimeError:
                self.stop(grace=2)
                if attempt == attempts:
                    raise
            except BaseException:
                self.stop(grace=2)
                raise
        self.started_s = time.monotonic() - t0
        return self

    def stop_slurmctld(self) -> None:
        """Stop only the controller (SIGTERM, then SIGKILL): clients then see it unreachable."""
        p = self.procs.pop("slurmctld", None)
        if p is not None:
            kill_pids([p.pid], wait=10)
            p.wait(timeout=5)

    def start_slurmctld(self, timeout: float = 30) -> None:
        """Start the controller again; it reloads jobs from StateSaveLocation. Returns once the
        node is back (a restarted slurmctld shows it `unknown` until slurmd registers again,
        up to SlurmdTimeout/3 = 20 s later: a SIGHUP makes slurmd register at once)."""
        self._spawn("slurmctld")
        self._wait("slurmctld", self.controller_up, timeout)
        slurmd = self.procs.get("slurmd")
        if slurmd is not None and self.node_state().rstrip("*~#$@") in ("unknown", ""):
            with contextlib.suppress(ProcessLookupError):
                os.kill(slurmd.pid, signal.SIGHUP)
        self._wait("node after restart", lambda: self.node_state().rstrip("*~#$@") in (
            "idle", "mixed", "allocated", "completing"), timeout)

    def job_pids(self) -> list[int]:
        """PIDs of processes that belong to this cluster but are not its daemons: slurmstepd,
        job scripts and everything they started (orphans too), slurmctld's slurmscriptd, and
        any client run with `env`. Found by SLURM_CONF=<this conf> in /proc/PID/environ (Slurm
        sets it in every job's environment, even with --export=NONE; slurmstepd inherits it
        from slurmd), since slurmstepd daemonises away from slurmd and proctrack/linuxproc
        loses processes whose parent exited."""
        needle = f"SLURM_CONF={self.conf}".encode()
        skip = set(self.daemon_pids()) | set(_ancestors(os.getpid()))
        pids: set[int] = set()
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and int(entry.name) not in skip:
                pid = int(entry.name)
                if _environ_has(pid, needle):
                    pids.add(pid)
                    pids.update(descendants(pid))
        return sorted(pids - skip)

    def daemon_pids(self) -> list[int]:
        pids = [p.pid for p in self.procs.values()]
        if self.munged_pid:
            pids.append(self.munged_pid)
        return pids

    def stop(self, grace: float = 5.0) -> None:
        """Stop everything this cluster started, by PID: SIGTERM to the daemons and to job
        processes, SIGKILL to what is left after `grace` seconds. Leaves no process behind."""
        t0 = time.monotonic()
        jobs = self.job_pids()
        procs = dict(self.procs)
        self.procs.clear()
        kill_pids([p.pid for p in procs.values()] + jobs, wait=grace)
        for p in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        # a step that slurmd was starting while it stopped, or a job's orphaned child
        kill_pids([p for p in self.job_pids() if _alive(p)], wait=grace)
        if self.munged_pid:
            kill_pids([self.munged_pid], wait=grace)
            self.munged_pid = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        self.stopped_s = time.monotonic() - t0

    def log_tail(self, name: str, lines: int = 15) -> str:
        text = ""
        for path in (self.log_dir / f"{name}.log", self.log_dir / f"{name}.out"):
            with contextlib.suppress(OSError):
                text += "".join(path.read_text(errors="replace").splitlines(True)[-lines:])
        return f"--- {name}:\n{text}"
