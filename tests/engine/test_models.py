from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from cream_engine.models import MARKER, ModelError, load_model, resolve_model


def test_tiny_random_is_small_seeded_and_deterministic(tiny_model_dir: Path,
                                                       tmp_path: Path) -> None:
    import torch

    model, tok = load_model(str(tiny_model_dir), tmp_path)
    n = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < n < 10_000_000
    assert tok.pad_token == tok.eos_token == "<|im_end|>"
    assert "<|im_start|>assistant" in tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    again, _ = load_model("bundled:tiny-random", tmp_path / "other-home")  # built anew
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


def test_bundled_model_is_built_once(tiny_model_dir: Path, models_home: Path) -> None:
    marker = tiny_model_dir / MARKER
    before = marker.stat().st_mtime_ns
    started = time.time()
    assert Path(resolve_model("bundled:tiny-random", models_home)) == tiny_model_dir
    assert time.time() - started < 1.0
    assert marker.stat().st_mtime_ns == before
    assert (tiny_model_dir / "model.safetensors").is_file()


def test_building_does_not_touch_the_callers_rng(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    resolve_model("bundled:tiny-random", tmp_path)
    assert torch.equal(torch.rand(3), expected)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such folder"):
        resolve_model(str(tmp_path / "nope"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"), tmp_path)


def test_hub_id_without_network_fails_fast(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
        resolve_model("someone/some-model", tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    started = time.time()
    with pytest.raises(ModelError, match="cannot be reached"):
        resolve_model("someone/some-model", tmp_path)
    assert time.time() - started < 5


def test_not_a_causal_lm_is_refused(tmp_path: Path) -> None:
    from transformers import DistilBertConfig

    DistilBertConfig(dim=32, n_layers=1, n_heads=2, hidden_dim=64).save_pretrained(
        tmp_path / "encoder")
    for name in ("tokenizer.json", "model.safetensors"):  # (the folder check asks for them)
        (tmp_path / "encoder" / name).write_bytes(b"")
    with pytest.raises(ModelError, match="'distilbert' is not a causal language model"):
        load_model(str(tmp_path / "encoder"), tmp_path)


def test_unknown_bundled_name(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown bundled model"):
        resolve_model("bundled:gpt-5", tmp_path)


def test_prepare_model_command_prints_one_line_and_the_errors_exit_code(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "cream_engine", "--home", str(tmp_path),
                          "prepare-model", "bundled:gpt-5"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == ModelError.exit_code == 2
    assert out.stderr.strip().splitlines() == [
        "cream: error: model 'bundled:gpt-5': unknown bundled model (known: "
        "bundled:smollm2-135m-instruct, bundled:tiny-random, bundled:tiny-reward)"]


@pytest.mark.slow
def test_smollm2_converts_once_and_matches_the_gguf_logits(smollm2_dir: Path,
                                                           models_home: Path) -> None:
    import torch

    from cream_engine.models import load_gguf_smollm2

    marker = (smollm2_dir / MARKER).stat().st_mtime_ns
    started = time.time()
    model, tok = load_model("bundled:smollm2-135m-instruct", models_home)
    assert time.time() - started < 10  # from the folder, not a second conversion
    assert (smollm2_dir / MARKER).stat().st_mtime_ns == marker
    assert (smollm2_dir / "model.safetensors").is_file()
    gguf_model, _ = load_gguf_smollm2()
    ids = tok(["The capital of France is", "Two plus two equals"], return_tensors="pt",
              padding=True).input_ids
    with torch.no_grad():
        ours, theirs = model(ids).logits, gguf_model(ids).logits
    assert ours.shape == (2, ids.shape[1], 49152)
    assert torch.equal(ours, theirs)
