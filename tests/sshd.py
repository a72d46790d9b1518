"""A real OpenSSH server for tests, private to one temp folder.

`SshServer(folder).start()` writes (once) an ed25519 host key, an ed25519 client key, an
`authorized_keys` file and an `sshd_config` (127.0.0.1 on a spare port chosen once, pid file and
log in the folder, keys only, `AcceptEnv CREAM_* PYTHON* HF_* TOKENIZERS_PARALLELISM`), starts
`/usr/sbin/sshd -D -e` as a child process (sshd re-executes itself, so the path must be absolute;
-D keeps it in the foreground so its PID is ours) and returns once an `ssh` to it runs `true`.
`write_client_config({"hostA": {"CREAM_HOME": "/tmp/a"}})` writes an ssh client config with one
`Host` entry per name (all of them this server, logged in as the current user with the client
key), each with its own `SetEnv` lines: several "machines" that differ only in their
environment. Tests point the code under test at it with `CREAM_SSH_COMMAND=server.ssh_command`.

`kill()` plays the machine's sshd dying: SIGKILL to the listener and every process under it
(the per-connection sshd processes and the commands they run, found through /proc), so open
sessions end and a new connection is refused at once. `start()` serves again on the same port
with the same keys. `stop()` is `kill()` for good; everything is ended by PID, never by name,
since other sshd may run on the machine.

Needs Debian's `openssh-server` and `openssh-client` (`scripts/setup.sh` installs them where it
can) and, for the login as root, root: `unavailable_reason()` says why a machine cannot run it.
The privilege-separation directory /run/sshd, which sshd refuses to start without (a container
has no systemd to create it), is created if missing; nothing else global is touched: no
/etc/ssh file, no ~/.ssh, no systemd unit.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.slurm_cluster import descendants, free_ports

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")
ACCEPT_ENV = "CREAM_* PYTHON* HF_* TOKENIZERS_PARALLELISM"


def unavailable_reason() -> str | None:
    """Why an sshd cannot be started here, or None where it can."""
    missing = [n for n in (SSHD,) if not os.access(n, os.X_OK)]
    missing += [n for n in ("ssh", "ssh-keygen") if shutil.which(n) is None]
    if missing:
        return (f"OpenSSH not installed (missing {', '.join(missing)}): apt-get install "
                "openssh-server openssh-client, or run scripts/setup.sh as root")
    if os.geteuid() != 0 and not PRIVSEP_DIR.is_dir():
        return f"sshd needs {PRIVSEP_DIR}, which only root can create"
    return None


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _tree(pid: int) -> list[int]:
    """`pid` and its live descendants ([] once `pid` is gone)."""
    if not _alive(pid):
        return []
    return [pid] + [p for p in descendants(pid) if _alive(p)]


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


class SshServer:
    """One sshd on 127.0.0.1:`port`, its keys, config, pid file and log in `folder`."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder).resolve()
        self.conf = self.folder / "sshd_config"
        self.host_key = self.folder / "host_ed25519"
        self.client_key = self.folder / "client_ed25519"
        self.authorized_keys = self.folder / "authorized_keys"
        self.pid_file = self.folder / "sshd.pid"
        self.log = self.folder / "sshd.log"
        self.client_config = self.folder / "ssh_config"
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.started_s = 0.0
        self._served = False   # once it has served, the port is kept whatever happens

    # -- files ----------------------------------------------------------------------------------
    def _keygen(self, path: Path, comment: str) -> None:
        if not path.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                            "-f", str(path)], check=True, capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        os.chmod(path, 0o600)   # ssh ignores a private key others can read

    def _write_files(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._keygen(self.host_key, "cream-test-host")
        self._keygen(self.client_key, "cream-test-client")
        self.authorized_keys.write_text(Path(f"{self.client_key}.pub").read_text())
        if not self.port:
            self.port = free_ports(1)[0]
        self.conf.write_text(f"""\
# written by tests/sshd.py
ListenAddress 127.0.0.1
Port {self.port}
HostKey {self.host_key}
PidFile {self.pid_file}
AuthorizedKeysFile {self.authorized_keys}
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AcceptEnv {ACCEPT_ENV}
LogLevel VERBOSE
""")
        # Debian's sshd will not start without its privilege-separation (chroot) directory,
        # which systemd's RuntimeDirectory makes at boot; a container has none. Root-owned and
        # not group/world writable, as sshd checks.
        if not PRIVSEP_DIR.is_dir():
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)

    def _options(self) -> list[str]:
        """The client options every Host entry gets (also used, on the command line, by the
        readiness probe, which must not depend on write_client_config having been called)."""
        return ["HostName 127.0.0.1", f"Port {self.port}", f"User {self.user}",
                f"IdentityFile {self.client_key}", "IdentitiesOnly yes",
                "StrictHostKeyChecking no", "UserKnownHostsFile /dev/null", "LogLevel ERROR",
                "BatchMode yes", "ConnectTimeout 5"]

    def write_client_config(self, hosts: dict[str, dict[str, str]]) -> Path:
        """Write the ssh client config: one `Host NAME` entry per item, all of them this
        server, each sending its environment items with `SetEnv` (names must match
        AcceptEnv; values without blanks or quotes, since ssh_config splits on them). All
        pairs go on one `SetEnv` line: ssh (9.2) uses only the first SetEnv line it meets."""
        lines = ["# written by tests/sshd.py"]
        for name, env in hosts.items():
            assert name and not any(c.isspace() for c in name), f"bad host name {name!r}"
            lines.append(f"Host {name}")
            lines += [f"    {opt}" for opt in self._options()]
            for key, value in env.items():
                assert key and not any(c.isspace() or c in "=\"'" for c in key), key
                assert not any(c.isspace() or c in "\"'" for c in value), \
                    f"SetEnv value for {key} must have no blanks or quotes: {value!r}"
            if env:
                lines.append("    SetEnv " + " ".join(f"{k}={v}" for k, v in env.items()))
        self.client_config.write_text("\n".join(lines) + "\n")
        return self.client_config

    @property
    def ssh_command(self) -> str:
        """The ssh command for CREAM_SSH_COMMAND: `ssh -F <client config>`."""
        return f"ssh -F {self.client_config}"

    def ssh(self, host: str, *command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """`ssh -F <client config> host command...`, text output captured (the remote shell
        joins `command` with blanks and parses it, as ssh always does)."""
        return subprocess.run(["ssh", "-F", str(self.client_config), host, *command],
                              check=False, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    # -- daemon ---------------------------------------------------------------------------------
    def _probe(self) -> subprocess.CompletedProcess:
        opts = [a for opt in self._options() for a in ("-o", opt.replace(" ", "=", 1))]
        return subprocess.run(["ssh", "-F", "/dev/null", *opts, "sshd-probe", "true"],
                              check=False, capture_output=True, text=True, timeout=15,
                              stdin=subprocess.DEVNULL)

    def _spawn(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        with open(self.log, "ab") as log:
            log.write(f"--- tests/sshd.py: starting sshd on port {self.port}\n".encode())
            log.flush()
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.conf)],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited ({self.proc.returncode}) at start:\n"
                                   f"{self.log_tail()}")
            try:
                probe = self._probe()
                if probe.returncode == 0:
                    return
                last = probe.stderr.strip()
            except subprocess.TimeoutExpired:
                last = "ssh probe timed out"
            if time.monotonic() > deadline:
                raise TimeoutError(f"sshd on 127.0.0.1:{self.port} did not let `ssh true` in "
                                   f"after {timeout}s (last ssh error: {last}):\n"
                                   f"{self.log_tail()}")
            time.sleep(0.1)

    def start(self, timeout: float = 10, attempts: int = 3) -> SshServer:
        """Start sshd (keys and config written once) and return once `ssh true` works. Before
        it has ever served, a port taken meanwhile is replaced by a fresh one; after, the port
        is kept, so clients configured earlier reach the restarted server."""
        if self.running:
            return self
        t0 = time.monotonic()
        for attempt in range(1, attempts + 1):
            self._write_files()
            self._spawn()
            try:
                self._wait_ready(timeout)
                break
            except RuntimeError:
                self.kill()
                in_use = "Address already in use" in self.log_tail()
                if self._served or not in_use or attempt == attempts:
                    raise
                self.port = 0   # a fresh spare port on the next attempt
            except BaseException:
                self.kill()
                raise
        self._served = True
        self.started_s = time.monotonic() - t0
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """The listener and every live process under it (session sshd, shells, commands)."""
        return _tree(self.proc.pid) if self.proc is not None else []

    def kill(self, timeout: float = 5) -> None:
        """The machine's sshd dies: SIGKILL to the listener and everything under it, so open
        sessions drop (their clients exit 255) and new connections are refused. The tree is
        frozen first (SIGSTOP until no new process appears: a stopped process cannot fork), as
        the processes of a killed parent are re-parented to init and no longer found under it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        frozen: set[int] = set()
        for _ in range(50):
            new = [p for p in _tree(proc.pid) if p not in frozen]
            if not new:
                break
            _signal(new, signal.SIGSTOP)
            frozen.update(new)
        _signal(sorted(frozen), signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)   # reap the listener (the others are not our children)
        deadline = time.monotonic() + timeout
        while any(_alive(p) for p in frozen) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.pid_file.unlink(missing_ok=True)

    def stop(self) -> None:
        """Kill sshd and everything under it, for good. Idempotent."""
        self.kill()

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        with contextlib.suppress(OSError):
            text = "".join(self.log.read_text(errors="replace").splitlines(True)[-lines:])
        return f"--- sshd log ({self.log}):\n{text}"
