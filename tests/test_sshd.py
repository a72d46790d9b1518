"""The real-sshd fixture itself (tests/sshd.py): hosts that differ by their SetEnv lines, the
server dying under an open session, and serving again on the same port after a restart."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.sshd import SshServer


def test_hosts_kill_and_restart(sshd: SshServer, tmp_path):
    sshd.write_client_config({"hostA": {"CREAM_HOME": f"{tmp_path}/a"},
                              "hostB": {"CREAM_HOME": f"{tmp_path}/b", "PYTHONUNBUFFERED": "1"}})
    assert sshd.ssh_command == f"ssh -F {sshd.client_config}"
    for host, want in (("hostA", f"{tmp_path}/a"), ("hostB", f"{tmp_path}/b")):
        out = sshd.ssh(host, "printenv CREAM_HOME")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == want
    assert sshd.ssh("hostB", "printenv PYTHONUNBUFFERED").stdout.strip() == "1"

    port = sshd.port
    long = subprocess.Popen(["ssh", "-F", str(sshd.client_config), "hostA", "sleep 60"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10   # wait until the remote sleep runs
        while not any(_cmdline(p) == "sleep 60" for p in sshd.pids()):
            assert long.poll() is None and time.monotonic() < deadline, long.communicate()
            time.sleep(0.05)
        sessions = sshd.pids()
        sshd.kill()
        assert long.wait(timeout=5) == 255   # the open session dropped with the server
        assert sshd.pids() == [] and not any(_cmdline(p) for p in sessions)

        t0 = time.monotonic()
        out = sshd.ssh("hostA", "true", timeout=10)
        assert out.returncode == 255 and time.monotonic() - t0 < 2, out.stderr
        assert "refused" in out.stderr, out.stderr
    finally:
        if long.poll() is None:
            long.kill()
        long.communicate()

    sshd.start()
    assert sshd.port == port
    out = sshd.ssh("hostB", "printenv CREAM_HOME")
    assert out.returncode == 0 and out.stdout.strip() == f"{tmp_path}/b", out.stderr


def test_stop_is_idempotent(tmp_path):
    from tests.sshd import unavailable_reason

    if reason := unavailable_reason():
        pytest.skip(reason)
    server = SshServer(tmp_path / "sshd").start()
    pid = server.proc.pid
    server.stop()
    server.stop()
    assert not server.running and not _cmdline(pid)


def _cmdline(pid: int) -> str:
    """The command line of a live `pid`, or "" once it is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
