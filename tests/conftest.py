"""Shared fixtures: a temporary data home, an in-memory store, and the bundled models.

The tiny random model is built once per test session (a few seconds); the converted
SmolLM2-135M folder once per session too (about 20 s), and only tests marked `slow` use it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data home, also set as CREAM_HOME for code that reads the environment."""
    path = tmp_path / "home"
    monkeypatch.setenv("CREAM_HOME", str(path))
    for key in [k for k in os.environ if k.startswith("CREAM_") and k != "CREAM_HOME"]:
        monkeypatch.delenv(key)
    return path


@pytest.fixture
def store():
    from cream_engine.store import Store

    s = Store.memory()
    yield s
    s.close()


@pytest.fixture(scope="session")
def models_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data home shared by the session, where bundled models are built once."""
    return tmp_path_factory.mktemp("models-home")


@pytest.fixture(scope="session")
def tiny_model_dir(models_home: Path) -> Path:
    from cream_engine.models import resolve_model

    return Path(resolve_model("bundled:tiny-random", models_home))


@pytest.fixture(scope="session")
def smollm2_dir(models_home: Path) -> Path:
    """The converted SmolLM2-135M-Instruct folder (use only in tests marked slow)."""
    from cream_engine.models import resolve_model

    return Path(resolve_model("bundled:smollm2-135m-instruct", models_home))


@pytest.fixture
def tmpfs():
    """Small real disks: `tmpfs("2m")` mounts one (see tests/fsfaults.py), unmounted after
    the test; the test is skipped where this session cannot mount."""
    from tests.fsfaults import mounted

    with contextlib.ExitStack() as stack:
        yield lambda size="2m": stack.enter_context(mounted(size))


def run_cli(*args: str, home: Path | None = None, cwd: Path | None = None,
            env: dict | None = None, timeout: float = 120, prefix: tuple[str, ...] = (),
            preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    """Run the real `cream` console entry point in a subprocess (`prefix`: a command that
    runs it, e.g. as another user; `preexec_fn`: run in the child first, e.g. a limit)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CREAM_")}
    if home is not None:
        full_env["CREAM_HOME"] = str(home)
    full_env.update(env or {})
    return subprocess.run([*prefix, sys.executable, "-m", "cream_tui.cli", *args], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=preexec_fn)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A real single-node Slurm cluster private to this session (tests/slurm_cluster.py):
    run every Slurm client with `slurm_cluster.env` (SLURM_CONF). Skipped, with the reason,
    where it cannot run (not root, slurm-wlm/munge not installed)."""
    from tests.slurm_cluster import SlurmCluster, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    """A real OpenSSH server on 127.0.0.1 private to this session (tests/sshd.py): write a
    client config with `sshd.write_client_config({...})` and use `sshd.ssh_command`. Skipped,
    with the reason, where it cannot run (openssh-server/openssh-client not installed)."""
    from tests.sshd import SshServer, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = SshServer(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()
