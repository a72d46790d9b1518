from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cream_engine.config import (
    SECTIONS,
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    env_overrides,
    field_help,
    from_dict,
    load_config,
    to_toml,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_field_has_a_default_and_help() -> None:
    helps = field_help()
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert helps[name][f.name].strip(), f"{name}.{f.name} has no help"
            assert (f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING)


def test_commented_example_loads_back_identically(tmp_path: Path) -> None:
    path = write(tmp_path, to_toml(ExperimentConfig(), comments=True))
    loaded = load_config(path, environ={})
    assert loaded == ExperimentConfig()
    assert "# DPO temperature beta" in path.read_text()


def test_non_default_values_round_trip(tmp_path: Path) -> None:
    cfg = from_dict({"run": {"method": "srlm", "iterations": 3, "name": "x-1"},
                     "generate": {"n": 5, "temperature": 0.8, "top_p": 0.95},
                     "train": {"learning_rate": 1e-6, "lora": True},
                     "data": {"eval_sets": ["bundled:arc"]}})
    again = load_config(write(tmp_path, to_toml(cfg)), environ={})
    assert again == cfg
    assert again.train.learning_rate == 1e-6 and again.data.eval_sets == ("bundled:arc",)


@pytest.mark.parametrize("text, expected", [
    ("[generate]\ntemprature = 0.5\n", "unknown key [generate] temprature (did you mean "
                                       "'temperature'?)"),
    ("[trian]\nbeta = 0.1\n", "unknown section [trian] (did you mean 'train'?)"),
    ("[generate]\nn = \"four\"\n", '[generate] n = "four": expected an integer'),
    ("[generate]\nn = -1\n", "[generate] n = -1: must be >= 2"),
    ("[generate]\ntemperature = 3.5\n", "[generate] temperature = 3.5: must be <= 2.0"),
    ("[generate]\ntemperature = 0\n", "[generate] temperature = 0.0: must be > 0.0"),
    ("[run]\nmethod = \"rlhf\"\n", "[run] method = 'rlhf': must be one of 'srlm', 'cream'"),
    ("[run]\niterations = 0\n", "[run] iterations = 0: must be >= 1"),
    ("[train]\nlora = 1\n", "[train] lora = 1: expected true or false"),
    ("[run]\nmodel = \"bundled:gpt5\"\n", "unknown bundled model"),
    ("[run]\n[run]\n", "invalid TOML"),
    ("[train]\nbeta = nan\n", "must be a finite number"),
])
def test_bad_values_are_named(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), environ={})
    message = str(err.value)
    assert expected in message
    assert "\n" not in message and message.startswith(str(tmp_path / "exp.toml"))


def test_missing_and_non_utf8_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes("[run]\nname = \"caf\xe9\"\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "exp.toml"
    path.write_text('[data]\nprompts = "p.jsonl"\n')
    cfg = load_config(path, environ={})
    assert cfg.data.prompts == str(tmp_path / "sub" / "p.jsonl")


def test_precedence_defaults_file_environment_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "[train]\nbeta = 0.2\n[generate]\nn = 6\n")
    assert load_config(path, environ={}).train.beta == 0.2
    env = {"CREAM_TRAIN_BETA": "0.3", "CREAM_GENERATE_BACKEND": "hf", "CREAM_HOME": "/x"}
    cfg = load_config(path, environ=env)
    assert (cfg.train.beta, cfg.generate.backend, cfg.generate.n) == (0.3, "hf", 6)
    cfg = load_config(path, overrides=["train.beta=0.4"], environ=env)
    assert cfg.train.beta == 0.4
    assert env_overrides(env) == ["generate.backend=hf", "train.beta=0.3"]


def test_override_syntax_errors() -> None:
    with pytest.raises(ConfigError, match="expected section.key=value"):
        apply_overrides({}, ["beta"])
    with pytest.raises(ConfigError, match="unknown key \\[train\\] bta"):
        from_dict(apply_overrides({}, ["train.bta=1"]))


def test_config_is_frozen() -> None:
    cfg = ExperimentConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.beta = 1.0  # type: ignore[misc]
