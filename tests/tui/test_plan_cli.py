"""`cream plan CONFIG [--gpus NxMEM] [--json]`: the real console entry point on a Llama-3-8B
shaped model folder (its config.json only), on the CPU, and with bad input."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO, run_cli

LLAMA3_8B = REPO / "tests" / "fixtures" / "llama3-8b"
NO_GPU = {"CREAM_FAKE_GPUS": "/nonexistent/gpus.json"}  # (the same on a machine with GPUs)


def llama_toml(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "llama3-8b.toml"
    # (generation on hf: `auto` would pick vLLM on a machine where it is installed)
    path.write_text(f'[run]\nname = "llama3-8b"\nmodel = "{LLAMA3_8B}"\n'
                    f'[generate]\nbackend = "hf"\n{extra}')
    return path


def test_llama3_8b_on_one_80gb_gpu(tmp_path: Path) -> None:
    r = run_cli("plan", str(llama_toml(tmp_path)), "--gpus", "1x80", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    out = " ".join(r.stdout.split())  # (rich wraps at 80 columns)
    assert "8.03B parameters" in out and "on 1 x 80 GiB GPU (--gpus 1x80)" in out
    assert "generate hf, 1 GPU 19.4 fits on 1 GPU" in out
    assert "train 1 GPU 149.8 does not fit; fits with LoRA (60.7 GiB)" in out
    assert "weights+grads+AdamW 119.7" in out and "train: set [train] lora = true" in out
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(
        "cream: error: train needs 149.8 GiB per GPU (1 GPU), more than the 72.0 GiB usable")
    assert not (tmp_path / "runs").exists()  # nothing queued, no home made


def test_llama3_8b_on_eight_80gb_gpus(tmp_path: Path) -> None:
    config = llama_toml(tmp_path)
    r = run_cli("plan", str(config), "--gpus", "8x80", "--set", "train.strategy=fsdp",
                "--set", "train.processes=auto", "--set", "train.batch_size=8", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "train FSDP over 8 GPUs 31.4 fits: FSDP over 8 GPUs" in out
    assert "fits on 8 x 80 GiB GPUs: the largest stage is train at 31.4 GiB per GPU" in out
    # as written (one process, DDP) it does not, and the plan says how it would
    r = run_cli("plan", str(config), "--gpus", "8x80", "--json", cwd=tmp_path)
    assert r.returncode == 3 and "fits with FSDP over 2" in r.stderr
    data = json.loads(r.stdout)
    assert data["model"]["parameters"] == 8_030_261_248 and data["fits"] is False
    assert data["devices"] == {"gpus": 8, "memory_gib": 80.0, "usable_gib": 72.0,
                               "source": "--gpus 8x80", "cpus": data["devices"]["cpus"]}
    train = {s["stage"]: s for s in data["stages"]}["train"]
    assert train["need_gib"] == 149.8 and train["fits"] is False
    assert train["advice"].startswith('set [train] activation_checkpointing = true, '
                                      'strategy = "fsdp", processes = 2')


def test_the_default_config_on_the_cpu(tmp_path: Path) -> None:
    """No GPU and no --gpus: the run would be on the CPU, and its RAM is planned."""
    (tmp_path / "c.toml").write_text('[run]\nname = "demo"\n')
    r = run_cli("plan", "c.toml", cwd=tmp_path, env=NO_GPU)
    assert r.returncode == 0, r.stderr
    assert "the run would be on the CPU; planning its RAM" in r.stderr
    out = " ".join(r.stdout.split())
    assert "bundled:smollm2-135m-instruct: 134.5M parameters" in out
    assert "GiB RAM" in out and "train 1 process 6.7 fits in RAM" in out


def test_gpus_read_from_the_machine(tmp_path: Path) -> None:
    fake = tmp_path / "gpus.json"
    fake.write_text(json.dumps([{"memory_used_mb": 1000, "memory_total_mb": 81920}] * 2))
    r = run_cli("plan", str(llama_toml(tmp_path, "[train]\nlora = true\n")), "--json",
                cwd=tmp_path, env={"CREAM_FAKE_GPUS": str(fake)})
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["devices"]["gpus"] == 2 and data["devices"]["source"] == "NVML"
    assert {s["stage"]: s["verdict"] for s in data["stages"]}["train"] == "fits on 1 GPU"


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    config = llama_toml(tmp_path)
    for bad in ("8", "8x", "0x80", "eightx80"):
        r = run_cli("plan", str(config), "--gpus", bad, cwd=tmp_path)
        assert r.returncode == 2 and r.stdout == "", (bad, r.stderr)
        assert r.stderr.count("\n") == 1 and "expected NxMEM" in r.stderr
    r = run_cli("plan", str(config), "--set", "train.lora_rnk=8", cwd=tmp_path)
    assert r.returncode == 2 and "did you mean 'lora_rank'" in r.stderr
    (tmp_path / "h.toml").write_text('[run]\nname = "x"\nmodel = "org/not-cached"\n')
    r = run_cli("plan", "h.toml", "--gpus", "1x80", cwd=tmp_path,
                env={"HF_HUB_CACHE": str(tmp_path / "hub")})
    assert r.returncode == 2 and "not in the Hugging Face cache" in r.stderr


def test_help() -> None:
    r = run_cli("plan", "--help")
    assert r.returncode == 0
    assert "--gpus" in r.stdout and "NxMEM" in r.stdout and "FSDP" in r.stdout
