"""`cream init --method M` writes the paper's settings of M, cited beside each key, and
`cream validate` notes every departure from them (still exit 0)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib

from cream_engine.config import METHODS, ExperimentConfig, from_dict, load_config, to_toml
from cream_engine.presets import PRESETS, departures
from tests.conftest import run_cli

ORACLE = ["oracle.model=bundled:tiny-reward"]  # (the preset leaves it for the user to fill)
TAIL = "(cream init --method cream writes the paper's settings)"


def _init(tmp_path: Path, method: str) -> tuple[Path, str]:
    r = run_cli("init", f"{method}.toml", "--method", method, cwd=tmp_path,
                home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    path = tmp_path / f"{method}.toml"
    return path, path.read_text(encoding="utf-8")


def test_cream_preset_writes_the_papers_settings(tmp_path: Path) -> None:
    path, text = _init(tmp_path, "cream")
    data = tomllib.loads(text)
    assert data["generate"]["n"] == 5 and data["generate"]["temperature"] == 0.8
    assert data["generate"]["top_p"] == 0.95
    assert data["train"]["beta"] == 0.1 and data["train"]["learning_rate"] == 1e-6
    cfg = load_config(path, environ={})
    assert (cfg.run.method, cfg.generate.n, cfg.generate.temperature, cfg.generate.top_p) == \
        ("cream", 5, 0.8, 0.95)
    assert (cfg.train.beta, cfg.train.learning_rate, cfg.train.epochs, cfg.train.warmup_ratio,
            cfg.train.weight_decay) == (0.1, 1e-6, 1, 0.1, 0.01)
    assert (cfg.sft.enabled, cfg.sft.epochs, cfg.sft.learning_rate) == (True, 5, 5e-6)
    # the paper is cited at the top and beside each of its keys, not beside ours
    assert text.startswith("# Preset --method cream: the settings of CREAM (Wang et al., "
                           "ICLR 2025, arXiv 2410.12735).")
    assert "\nn = 5  # CREAM (Wang et al. 2025): N = 5\n" in text
    assert "\nlearning_rate = 1e-06  # CREAM (Wang et al. 2025): lr 1e-6\n" in text
    assert "\nmax_new_tokens = 96\n" in text  # (not a paper setting here: no citation)
    # the full commented config: every key of the plain `cream init`, each with its help
    plain = to_toml(ExperimentConfig(), comments=True)
    assert [ln.split(" = ")[0] for ln in text.splitlines() if " = " in ln
            and not ln.startswith("#")] == \
        [ln.split(" = ")[0] for ln in plain.splitlines() if " = " in ln
         and not ln.startswith("#")]


def test_srlm_preset_writes_the_papers_settings(tmp_path: Path) -> None:
    path, text = _init(tmp_path, "srlm")
    cfg = load_config(path, environ={})
    assert (cfg.run.method, cfg.generate.n, cfg.generate.temperature, cfg.generate.top_p,
            cfg.judge.samples, cfg.train.beta, cfg.train.learning_rate, cfg.sft.enabled) == \
        ("srlm", 4, 0.7, 0.9, 3, 0.1, 1e-6, True)
    assert "\nsamples = 3  # SRLM (Yuan et al. 2024): 3 judgments averaged\n" in text
    assert "arXiv 2401.10020" in text.splitlines()[0]


@pytest.mark.parametrize("method", METHODS)
def test_every_preset_loads_with_no_departure(tmp_path: Path, method: str) -> None:
    path, text = _init(tmp_path, method)
    cfg = load_config(path, ORACLE if method == "oracle" else None, environ={})
    assert cfg.run.method == method and departures(cfg) == []
    assert all(f"# {PRESETS[method].cite}: {s.shown}" in text for s in PRESETS[method].settings)


def test_oracle_preset_asks_for_the_reward_model(tmp_path: Path) -> None:
    path, text = _init(tmp_path, "oracle")
    assert '\nmodel = ""  # must be set: the external reward model' in text
    r = run_cli("validate", str(path), cwd=tmp_path, home=tmp_path / "home")
    assert r.returncode == 2 and "[oracle] model is empty" in r.stderr


def test_scir_preset_says_its_values_are_ours(tmp_path: Path) -> None:
    _, text = _init(tmp_path, "scir")
    assert "arXiv 2502.08922" in text.splitlines()[0]
    assert "our default" in text.splitlines()[1]


def test_departures_are_named_in_preset_order() -> None:
    cfg = from_dict({"run": {"method": "cream"}, "generate": {"n": 4, "top_p": 0.9},
                            "train": {"learning_rate": 1e-6, "warmup_ratio": 0.1,
                                      "weight_decay": 0.01}, "sft": {"enabled": True}})
    assert [d.line for d in departures(cfg)] == [
        f"[generate] n = 4 departs from CREAM's N = 5 {TAIL}",
        f"[generate] top_p = 0.9 departs from CREAM's top-p 0.95 {TAIL}",
    ]
    # the dpo baseline is held to CREAM's settings; the consistency mode is not its setting
    cfg = from_dict({"run": {"method": "dpo"}, "consistency": {"mode": "dynamic"}})
    assert [(d.setting.section, d.setting.key) for d in departures(cfg)] == [
        ("sft", "enabled"), ("generate", "n"), ("train", "learning_rate")]


@pytest.mark.slow
def test_validate_notes_each_departure_and_still_succeeds(tmp_path: Path) -> None:
    """One validate (it measures every prompt with the tokenizer: seconds) of the cream
    preset with three values changed: three notes on stderr, the same in --json."""
    path, text = _init(tmp_path, "cream")
    path.write_text(text.replace("\nn = 5  #", "\nn = 4  #"), encoding="utf-8")
    r = run_cli("validate", str(path), "--json", "--set", "train.beta=0.2", "--set",
                "sft.enabled=false", cwd=tmp_path, home=tmp_path / "home", timeout=300)
    assert r.returncode == 0, r.stderr
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("cream: note:")]
    assert notes == [
        f"cream: note: [sft] enabled = false departs from CREAM's seed SFT on {TAIL}",
        f"cream: note: [generate] n = 4 departs from CREAM's N = 5 {TAIL}",
        f"cream: note: [train] beta = 0.2 departs from CREAM's β = 0.1 {TAIL}",
    ]
    found = json.loads(r.stdout)["departures"]
    assert [(d["key"], d["value"], d["paper_value"]) for d in found] == [
        ("sft.enabled", False, True), ("generate.n", 4, 5), ("train.beta", 0.2, 0.1)]
    assert f"{path}: ok (cream" in r.stderr


@pytest.mark.slow
def test_validate_of_a_preset_notes_nothing(tmp_path: Path) -> None:
    path, _ = _init(tmp_path, "oracle")
    r = run_cli("validate", str(path), "--set", ORACLE[0], cwd=tmp_path,
                home=tmp_path / "home", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "note:" not in r.stderr and f"{path}: ok (oracle" in r.stderr


def test_unknown_method_exits_2_with_the_known_ones(tmp_path: Path) -> None:
    r = run_cli("init", "x.toml", "--method", "ppo", cwd=tmp_path, home=tmp_path / "home")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "cream: error: --method 'ppo': unknown method (known: srlm, cream, scir, dpo, oracle)"]
    assert not (tmp_path / "x.toml").exists()


def test_init_without_method_is_unchanged(tmp_path: Path) -> None:
    r = run_cli("init", "x.toml", cwd=tmp_path, home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x.toml").read_text(encoding="utf-8") == \
        to_toml(ExperimentConfig(), comments=True)
