"""Training processes on one box: N ranks of `python -m cream_engine.train_rank`, started the
way `torchrun --standalone --nproc_per_node N` starts them (the same environment contract:
RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), and watched.

Why not torchrun itself: a SIGKILL of the engine (the kill sweep, an OOM killer) would leave
torchrun's workers training on, and writing a checkpoint, beside the resumed run. Here each
rank is the engine's own child, in its process group (a cancel from the worker reaches every
rank), and dies with the engine (PR_SET_PDEATHSIG). One rank failing stops the others at once,
where torchrun would leave them waiting in a collective until a 30-minute timeout.

Rank 0 speaks to the engine in JSON lines on its stdout (metrics, progress, the summary);
every rank that fails leaves its one-line error in `<work_dir>/rank-<r>.error`.

Across the nodes of a Slurm job (`[train] launcher`: auto when the job has several nodes, or
"srun"), one `srun` starts the ranks on every node instead: rank = SLURM_PROCID, the
rendezvous on the first node; `--kill-on-bad-exit` stops them all when one fails, and the job's
end (cancel, requeue) ends them with it.

Heavy layer only by where it is used: standard library.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from cream_engine.errors import TrainingError

PR_SET_PDEATHSIG = 1
STOP_GRACE_SECONDS = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free now (the rendezvous of rank 0): on the loopback, or "" for every
    interface (ranks on other nodes connect to it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def slurm_nodes() -> list[str]:
    """The hosts of the Slurm job this process runs in, in allocation order; [] outside one."""
    nodelist = os.environ.get("SLURM_JOB_NODELIST")
    if not os.environ.get("SLURM_JOB_ID") or not nodelist:
        return []
    try:
        proc = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                              text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return proc.stdout.split() if proc.returncode == 0 else []


def slurm_node_count() -> int:
    """Nodes of the Slurm job this process runs in (0 outside one)."""
    if not os.environ.get("SLURM_JOB_ID"):
        return 0
    try:
        return int(os.environ.get("SLURM_JOB_NUM_NODES") or os.environ.get("SLURM_NNODES")
                   or 1)
    except ValueError:
        return 1


def uses_srun(launcher: str) -> bool:
    """Whether the ranks start with srun: asked, or auto in a Slurm job of several nodes."""
    if launcher == "srun":
        if not os.environ.get("SLURM_JOB_ID"):
            raise TrainingError('[train] launcher = "srun": this run is not inside a Slurm '
                                "job (submit it with --executor slurm)")
        return True
    return launcher == "auto" and slurm_node_count() > 1


def rank_from_slurm() -> None:
    """In a rank srun started: torchrun's variables from Slurm's task variables."""
    if not os.environ.get("CREAM_SRUN"):
        return
    world = int(os.environ["SLURM_NTASKS"])
    nodes = max(1, int(os.environ.get("SLURM_NNODES") or os.environ.get("SLURM_JOB_NUM_NODES")
                       or 1))
    os.environ.update(RANK=os.environ["SLURM_PROCID"], LOCAL_RANK=os.environ["SLURM_LOCALID"],
                      WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world // nodes))


def die_with_parent() -> None:
    """Called first thing in a rank: the kernel SIGKILLs it when the engine that started it
    dies (`CREAM_PARENT_PID`, checked after, covers an engine that died before this ran).
    In the rank rather than in a `preexec_fn`, which is unsafe in a threaded parent."""
    parent = os.environ.get("CREAM_PARENT_PID")
    if not parent:
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the cancel path still stops the ranks
        pass
    if os.getppid() != int(parent):
        os._exit(1)


def rank_env(rank: int, world: int, port: int, *, threads: int | None) -> dict[str, str]:
    env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
               LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
               PYTHONUNBUFFERED="1", CREAM_PARENT_PID=str(os.getpid()))
    if threads is not None:  # CPU ranks share the cores instead of each taking all of them
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_ranks(world: int, args: list[str], work_dir: Path,
              on_event: Callable[[dict], None], *, cpu: bool, launcher: str = "local") -> None:
    """Run `python -m cream_engine.train_rank *args` as `world` ranks until all end.

    `on_event` gets every JSON line rank 0 prints. Raises `TrainingError` (the first rank's
    error line) when a rank fails; any exception here, a cancel included, stops every rank."""
    for old in work_dir.glob("rank-*.error"):
        old.unlink()
    if uses_srun(launcher):
        _srun_ranks(world, args, work_dir, on_event, cpu=cpu)
        return
    port = free_port()
    threads = max(1, (os.cpu_count() or 1) // world) if cpu else None
    procs: list[subprocess.Popen] = []
    try:
        for rank in range(world):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "cream_engine.train_rank", *args],
                env=rank_env(rank, world, port, threads=threads),
                stdout=subprocess.PIPE if rank == 0 else subprocess.DEVNULL))
        _watch(procs, on_event)
    finally:
        stop(procs)
    codes = [p.returncode for p in procs]
    if any(codes):
        raise TrainingError(_first_error(work_dir, codes))


def _srun_ranks(world: int, args: list[str], work_dir: Path,
                on_event: Callable[[dict], None], *, cpu: bool) -> None:
    """The ranks as one srun step over the job's nodes, `world / nodes` on each."""
    hosts = slurm_nodes()
    if not hosts:
        raise TrainingError("cannot read this Slurm job's nodes (scontrol show hostnames "
                            "$SLURM_JOB_NODELIST failed)")
    if world % len(hosts):
        raise TrainingError(f"[train] processes = {world}: not a multiple of the job's "
                            f"{len(hosts)} nodes")
    per_node = world // len(hosts)
    port = free_port("")
    env = dict(os.environ, MASTER_ADDR=hosts[0], MASTER_PORT=str(port), PYTHONUNBUFFERED="1",
               CREAM_SRUN="1")
    env.pop("CREAM_PARENT_PID", None)
    if cpu:  # CPU ranks share a node's cores
        cores = int(os.environ.get("SLURM_CPUS_ON_NODE") or os.cpu_count() or 1)
        env["OMP_NUM_THREADS"] = str(max(1, cores // per_node))
    print(f"train: {world} ranks with srun on {len(hosts)} node(s) {','.join(hosts)} "
          f"(rendezvous {hosts[0]}:{port})", file=sys.stderr, flush=True)
    proc = subprocess.Popen(
        ["srun", f"--nodes={len(hosts)}", f"--ntasks={world}", f"--ntasks-per-node={per_node}",
         "--kill-on-bad-exit=1", "--export=ALL", sys.executable, "-m",
         "cream_engine.train_rank", *args], env=env, stdout=subprocess.PIPE)
    try:
        _watch([proc], on_event)
    finally:
        stop([proc])
    if proc.returncode:
        raise TrainingError(_rank_error(work_dir, range(world), world) or
                            f"srun's {world} training ranks ended (exit {proc.returncode}) "
                            "without a message; see the job log")


def _watch(procs: list[subprocess.Popen], on_event: Callable[[dict], None]) -> None:
    """Read rank 0's lines until every rank has ended; return early when one fails."""
    out = procs[0].stdout
    assert out is not None
    selector = selectors.DefaultSelector()
    selector.register(out, selectors.EVENT_READ)
    buffer = b""
    open_ = True
    while True:
        if open_ and selector.select(timeout=0.5):
            chunk = os.read(out.fileno(), 65536)
            if not chunk:
                open_ = False
                selector.unregister(out)
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                _event(line, on_event)
        elif not open_:
            time.sleep(0.2)
        codes = [p.poll() for p in procs]
        if any(c not in (None, 0) for c in codes):
            return  # one rank failed: the others would wait for it in a collective
        if all(c == 0 for c in codes) and not open_:
            return


def _event(line: bytes, on_event: Callable[[dict], None]) -> None:
    try:
        event = json.loads(line)
    except ValueError:  # a library printing to stdout: pass it on to the job log
        print(line.decode("utf-8", "replace"), file=sys.stderr, flush=True)
        return
    if isinstance(event, dict):
        on_event(event)


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every rank still running, then SIGKILL those that outlive the grace period."""
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for p in alive:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for p in procs:
        if p.stdout is not None:
            p.stdout.close()


def _first_error(work_dir: Path, codes: list[int | None]) -> str:
    """The error line of the lowest failed rank that left one, else which rank died how."""
    found = _rank_error(work_dir, [r for r, code in enumerate(codes) if code], len(codes))
    if found:
        return found
    rank, code = next((r, c) for r, c in enumerate(codes) if c)
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
    return (f"training rank {rank} of {len(codes)} ended ({how}) without a message; "
            "see the job log")


def _rank_error(work_dir: Path, ranks: Iterable[int], world: int) -> str | None:
    """The one-line error the lowest of `ranks` left in `<work_dir>/rank-<r>.error`, if any."""
    for rank in ranks:
        path = work_dir / f"rank-{rank}.error"
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                return text if world == 1 else f"rank {rank}: {text}"
    return None
