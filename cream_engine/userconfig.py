"""The user's own settings, beside no run: `~/.config/cream/config.toml` (or
`$XDG_CONFIG_HOME/cream/config.toml`; `$CREAM_USER_CONFIG` names another file).

    [slurm]                      # defaults of `cream submit --executor slurm`
    partition = "gpu"
    account = "my-lab"
    qos = "normal"
    time = "24:00:00"
    gres = "gpu:8"
    nodes = 1
    sbatch = ["--mem=200G", "--constraint=h100"]   # more sbatch options, one per item
    setup = ["module load cuda/12.4", "source ~/venvs/cream/bin/activate"]
    python = "python"            # the interpreter on the compute nodes [default: this cream's]
    signal_seconds = 120         # the warning before the time limit (graceful stop, requeue)
    poll_seconds = 5             # one squeue for all jobs at most this often

    [hosts.gpu1]                 # other boxes: `cream tui` shows them, `--host gpu1` reaches one
    ssh = "me@gpu1.lab"          # the ssh destination [default: the name]
    venv = "~/venvs/cream"       # or: command = "~/bin/cream" (the cream run there)
    home = "/data/cream-runs"    # its data home [default: that side's $CREAM_HOME or ./runs]

Unknown keys are refused with the file and key named, as in an experiment config.

Light layer: standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tomllib

from cream_engine import hosts
from cream_engine.errors import ConfigError

ENV = "CREAM_USER_CONFIG"

# key: (type, help) of the [slurm] table
SLURM_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "partition": (str, "partition (-p) [default: the cluster's default]"),
    "account": (str, "account to charge (-A)"),
    "qos": (str, "quality of service (--qos)"),
    "time": (str, "time limit (-t), e.g. 24:00:00 or 2-00:00:00"),
    "gres": (str, "generic resources per node, e.g. gpu:8"),
    "nodes": (int, "nodes (-N)"),
    "sbatch": (list, "more sbatch options, one per item, e.g. --mem=200G"),
    "setup": ((list, str), "shell lines run before the engine (module load, a venv)"),
    "python": (str, "the Python on the compute nodes that has cream installed"),
    "signal_seconds": (int, "seconds before the time limit: the job stops and requeues"),
    "poll_seconds": ((int, float), "at most one squeue per this many seconds"),
}


def user_config_path() -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(base).expanduser() / "cream" / "config.toml"


def user_config() -> dict[str, Any]:
    """The parsed file, {} when there is none; a file that cannot be read is one line."""
    path = user_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the user config ({e.strerror})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


def slurm_defaults() -> dict[str, Any]:
    """The [slurm] table, checked key by key."""
    path = user_config_path()
    table = user_config().get("slurm", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [slurm] must be a table")
    for key, value in table.items():
        if key not in SLURM_KEYS:
            raise ConfigError(f"{path}: [slurm] {key}: unknown key (known: "
                              f"{', '.join(SLURM_KEYS)})")
        kind = SLURM_KEYS[key][0]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{path}: [slurm] {key} = {value!r}: must be "
                              f"{_kind_name(kind)}")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: [slurm] {key}: every item must be a string")
    return dict(table)


def host_specs() -> dict[str, hosts.HostSpec]:
    """The [hosts] table, checked key by key: name -> how to reach it."""
    table = user_config().get("hosts", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{user_config_path()}: [hosts] must be a table")
    return hosts.configured(table, str(user_config_path()))


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", list: "a list of strings"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names[k] for k in kinds)
