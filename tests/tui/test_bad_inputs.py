"""Every malformed config, prompt file and model folder is refused at the door: the real
`cream submit` exits 2 with one line naming the field or file, prints no traceback, and leaves
the data home exactly as it was (the store, its files, their sizes, times and modes)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cream_engine.store import Store
from tests.conftest import run_cli

TINY = "tiny"  # the test's copy of the tiny model, beside the config


def prompts(n: int, extra: list[dict] | None = None) -> str:
    rows = [{"prompt": f"question {i}: what is {i} + {i}?"} for i in range(n)]
    return "".join(json.dumps(r) + "\n" for r in rows + (extra or []))


def config(**sections: dict) -> str:
    """A small valid config on the tiny model and `p.jsonl`, with `sections` merged in."""
    base = {"run": {"model": TINY, "iterations": 1},
            "data": {"prompts": "p.jsonl", "prompts_per_iteration": 4}}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    lines = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def without(*names: str) -> Callable[[Path], None]:
    def change(model: Path) -> None:
        for name in names:
            (model / name).unlink()
    return change


def pickle_only(model: Path) -> None:
    import torch

    state = {"w": torch.zeros(2)}
    (model / "model.safetensors").unlink()
    torch.save(state, model / "pytorch_model.bin")


def adapter_only(model: Path) -> None:
    for p in model.iterdir():
        p.unlink()
    (model / "adapter_config.json").write_text("{}")
    (model / "adapter_model.safetensors").write_bytes(b"")


def gpt1_model(model: Path) -> None:
    """The copy becomes a tiny OpenAI-GPT: a causal LM whose class names no decoder layer for
    FSDP to wrap (the tokenizer stays)."""
    from transformers import OpenAIGPTConfig, OpenAIGPTLMHeadModel

    tiny = OpenAIGPTLMHeadModel(OpenAIGPTConfig(vocab_size=49152, n_positions=1024, n_embd=16,
                                                n_layer=1, n_head=2))
    (model / "model.safetensors").unlink()
    tiny.save_pretrained(model, safe_serialization=True)


# case: (config text, prompt file text, change to the model copy, expected line part)
CASES: dict[str, tuple[str, str | bytes, Callable[[Path], None] | None, str]] = {
    # -- the config file
    "empty config": ("", prompts(8), None, "empty config: start from `cream init`"),
    "comments only": ("# nothing yet\n\n", prompts(8), None, "empty config"),
    "invalid TOML": ("[run\n", prompts(8), None, "invalid TOML"),
    "unknown section": (config() + "[trian]\nbeta = 1\n", prompts(8), None,
                        "unknown section [trian] (did you mean 'train'?)"),
    "section not a table": ("run = 3\n", prompts(8), None, "[run] must be a table"),
    "NaN": (config(train={"beta": "nan"}).replace('"nan"', "nan"), prompts(8), None,
            "[train] beta = nan: must be a finite number"),
    "bool for int": (config(generate={"n": True}), prompts(8), None,
                     "[generate] n = True: expected an integer"),
    "name too long": (config(run={"name": "a" * 300}), prompts(8), None,
                      "(300 characters): use 1 to 64 ASCII letters"),
    "name with a slash": (config(run={"name": "a/b"}), prompts(8), None,
                          "[run] name = \"a/b\" (3 characters): use 1 to 64"),
    "name not ASCII": (config(run={"name": "caf\u00e9"}), prompts(8), None, "ASCII letters"),
    "name starts with a dot": (config(run={"name": ".hidden"}), prompts(8), None,
                               "starting with a letter or digit"),
    "empty name": (config(run={"name": ""}), prompts(8), None, "(0 characters)"),
    "no room for a prompt": (config(generate={"max_new_tokens": 600}), prompts(8), None,
                             "[generate] max_new_tokens = 600: leaves no room for a prompt "
                             "within [train] max_length 512"),
    "bad long_prompts": (config(data={"long_prompts": "truncate"}), prompts(8), None,
                         "[data] long_prompts = 'truncate': must be one of 'refuse', 'skip'"),
    # -- the prompt file
    "prompt file missing": (config(data={"prompts": "nowhere.jsonl"}), prompts(8), None,
                            "nowhere.jsonl: no such prompt file"),
    "prompt line not JSON": (config(), prompts(3) + "{oops\n", None,
                             "p.jsonl:4: invalid JSON"),
    "prompt line not an object": (config(), prompts(3) + "[1, 2]\n", None,
                                  "p.jsonl:4: expected a JSON object"),
    "blank prompt": (config(), prompts(3, [{"prompt": "  "}]), None,
                     "p.jsonl:4: expected a non-empty \"prompt\""),
    "messages without a user turn": (config(), prompts(3, [{"messages": [
        {"role": "system", "content": "be brief"}]}]), None, "with a user turn"),
    "message content not a string": (config(), prompts(3, [{"messages": [
        {"role": "user", "content": 5}]}]), None, "each message needs a string"),
    "duplicate ids": (config(), prompts(3, [{"id": "a", "prompt": "x"},
                                            {"id": "a", "prompt": "y"}]), None,
                      "p.jsonl:5: duplicate prompt id 'a'"),
    "too few prompts": (config(), prompts(3), None, "3 prompts cannot fill 1 iterations x 4"),
    "too few once duplicates go": (config(), prompts(3, [{"prompt": "question 0: what is "
                                                                    "0 + 0?"}]), None,
                                   "3 prompts cannot fill"),
    "prompt too long": (config(), prompts(8, [{"prompt": "word " * 3000}]), None,
                        "p.jsonl:9: prompt is 3"),
    "every prompt too long, skipped": (config(data={"long_prompts": "skip"}),
                                       "".join(json.dumps({"prompt": f"{i} " + "w " * 900})
                                               + "\n" for i in range(8)), None,
                                       "every prompt is longer than 416 tokens"),
    "unknown bundled prompt set": (config(data={"prompts": "bundled:nope"}), prompts(8), None,
                                   "unknown bundled set"),
    "eval set missing": (config(data={"eval_sets": ["gone.jsonl"]}), prompts(8), None,
                         "gone.jsonl: no such"),
    "eval set line not JSON": (config(data={"eval_sets": ["broken-eval.jsonl"]}), prompts(8),
                               None, "broken-eval.jsonl:2: invalid JSON"),
    "eval set of unknown layout": (config(data={"eval_sets": ["p.jsonl"]}), prompts(8), None,
                                   "p.jsonl:1: "),
    "eval set of unknown type": (config(data={"eval_sets": ["c.toml"]}), prompts(8), None,
                                 "c.toml: unsupported file type"),
    "prompt file is a folder": (config(data={"prompts": "tiny"}), prompts(8), None,
                                "tiny: is a folder, not a file"),
    # -- the model folder
    "model folder missing": (config(run={"model": "./absent"}), prompts(8), None,
                             "[run] model = "),
    "no config.json": (config(), prompts(8), without("config.json"), "no config.json"),
    "config.json not JSON": (config(), prompts(8),
                             lambda m: (m / "config.json").write_text("{"),
                             "config.json is not readable JSON"),
    "no tokenizer": (config(), prompts(8), without("tokenizer.json"), "no tokenizer"),
    "no weights": (config(), prompts(8), without("model.safetensors"),
                   "no weights (*.safetensors)"),
    "pickle weights only": (config(), prompts(8), pickle_only,
                            "only pickle weights (e.g. pytorch_model.bin), which can run code "
                            "when loaded; convert them once with `python -m cream_engine "
                            "convert-model"),
    "a LoRA adapter": (config(), prompts(8), adapter_only, "a LoRA adapter, not a model"),
    "unknown bundled model": (config(run={"model": "bundled:gpt5"}), prompts(8), None,
                              "unknown bundled model"),
    "judge folder without weights": (config(eval={"judge": "./judge"}), prompts(8), None,
                                     "[eval] judge = "),
    # -- training processes and the libraries a config asks for
    "processes past the cores": (config(train={"processes": 1024, "batch_size": 1024}),
                                 prompts(8), None, "[train] processes = 1024: this machine "
                                 "has"),
    "processes not an integer": (config(train={"processes": "all"}), prompts(8), None,
                                 '[train] processes = "all": must be auto or an integer'),
    "batch not split evenly": (config(train={"processes": 2, "batch_size": 3}), prompts(8),
                               None, "[train] batch_size = 3: must be a multiple of "
                               "processes = 2"),
    "LoRA sharded": (config(train={"processes": 2, "lora": True, "strategy": "fsdp"}),
                     prompts(8), None, "LoRA trains with ddp"),
    "DeepSpeed not installed": (config(train={"processes": 2, "strategy": "deepspeed"}),
                                prompts(8), None, "[train] strategy = 'deepspeed' needs "
                                "DeepSpeed"),
    "vLLM not installed": (config(generate={"backend": "vllm"}), prompts(8), None,
                           "[generate] backend = 'vllm' needs vLLM"),
    "FSDP on a model it cannot wrap": (config(train={"processes": 2, "strategy": "fsdp"}),
                                       prompts(8), gpt1_model, "names no decoder layer for "
                                       "FSDP to wrap; use strategy = 'ddp'"),
}


def tree(home: Path) -> dict[str, tuple]:
    """Every path under the home with its size, modification time and mode."""
    out = {}
    for p in sorted(home.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(home))] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture
def work(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """A folder with a copy of the tiny model, and a home that has a store already."""
    shutil.copytree(tiny_model_dir, tmp_path / TINY)
    Store.open(tmp_path / "home").close()
    (tmp_path / "broken-eval.jsonl").write_text(
        '{"question": "2 + 2?", "answer": "#### 4"}\n{\n', encoding="utf-8")
    (tmp_path / "judge").mkdir()
    (tmp_path / "judge" / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "judge" / "tokenizer.json").write_text("{}")
    return tmp_path


@pytest.mark.parametrize("case", list(CASES))
def test_submit_refuses_with_one_line_and_leaves_the_home_alone(work: Path, case: str) -> None:
    text, prompt_text, change, expected = CASES[case]
    (work / "c.toml").write_text(text, encoding="utf-8")
    (work / "p.jsonl").write_text(prompt_text, encoding="utf-8")
    if change:
        change(work / TINY)
    home = work / "home"
    before = tree(home)
    r = run_cli("submit", "c.toml", cwd=work, home=home)
    assert r.returncode == 2, (case, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("cream: error: ")]
    assert len(errors) == 1 and expected in errors[0], (case, r.stderr)
    assert r.stdout == ""
    assert tree(home) == before


def test_more_processes_than_the_jobs_gpus_is_exit_3(work: Path) -> None:
    fake = work / "gpus.json"
    fake.write_text(json.dumps([{"memory_used_mb": 0, "memory_total_mb": 80000}] * 2))
    (work / "c.toml").write_text(config(train={"processes": 2}), encoding="utf-8")
    (work / "p.jsonl").write_text(prompts(8), encoding="utf-8")
    home = work / "home"
    before = tree(home)
    r = run_cli("submit", "c.toml", "--gpus", "1", cwd=work, home=home,
                env={"CREAM_FAKE_GPUS": str(fake)})
    assert r.returncode == 3, r.stderr
    assert r.stderr.strip() == ("cream: error: [train] processes = 2: the job has 1 GPU(s) "
                                "(ask for more with --gpus, or use processes = 'auto')")
    assert tree(home) == before


def test_a_read_prompt_file_keeps_separators_and_drops_duplicates(work: Path) -> None:
    """U+2028 inside a JSON string is not a line break; a repeated prompt is left out and
    counted; a long prompt is skipped when asked: validate says what will be used."""
    extra = [{"prompt": "one\u2028two"}, {"prompt": "question 1: what is 1 + 1?"},
             {"prompt": "word " * 3000}]
    (work / "p.jsonl").write_text(prompts(6, extra), encoding="utf-8")
    (work / "c.toml").write_text(config(data={"long_prompts": "skip"}))
    r = run_cli("validate", "c.toml", "--json", cwd=work, home=work / "home")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["prompts"] == {"used": 7, "duplicates": 1, "too_long": 1}
    assert "7 prompts (1 duplicate left out, 1 too long left out)" in r.stderr


OVERRIDES = {
    "--set of an unknown key": (["--set", "train.bta=0.2"], {},
                                "unknown key [train] bta (did you mean 'beta'?)"),
    "--set without a value": (["--set", "train.beta"], {}, "expected section.key=value"),
    "environment of the wrong type": ([], {"CREAM_TRAIN_BETA": "high"},
                                      '[train] beta = "high": expected a number'),
    "--set of a bad run name": (["--set", "run.name=../../etc"], {}, "[run] name = "),
}


@pytest.mark.parametrize("case", list(OVERRIDES))
def test_overrides_are_checked_like_the_file(work: Path, case: str) -> None:
    args, env, expected = OVERRIDES[case]
    (work / "c.toml").write_text(config(), encoding="utf-8")
    (work / "p.jsonl").write_text(prompts(8), encoding="utf-8")
    home = work / "home"
    before = tree(home)
    r = run_cli("submit", "c.toml", *args, cwd=work, home=home, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, (case, r.stderr)
    assert r.stderr.strip().splitlines()[-1].startswith("cream: error: ")
    assert expected in r.stderr, (case, r.stderr)
    assert tree(home) == before
