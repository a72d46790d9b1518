"""Both backends sample from the same distribution: `top_k` is explicit (0 = off) and nothing
else (transformers' default top-k of 50, a model's generation_config.json) adds one."""

from __future__ import annotations

import io
import json
import shutil
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

CHAT = [[{"role": "user", "content": "Name a colour."}]]


@pytest.fixture(scope="module")
def top_k_trap(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny model with a generation_config.json asking for top-k 50 (as many hub models'
    do), and a spy on the logits processors transformers builds for each `generate` call."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("trap") / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    (folder / "generation_config.json").write_text(json.dumps({**config, "top_k": 50}))
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.generation_config.top_k == 50  # the trap is armed
    built: list = []
    make = model._get_logits_processor

    def spy(*args, **kwargs):
        processors = make(*args, **kwargs)
        built.append(list(processors))
        return processors

    model._get_logits_processor = spy
    return model, tokenizer, built


def _top_ks(processors: list) -> list[int]:
    from transformers.generation.logits_process import TopKLogitsWarper

    return [p.top_k for p in processors if isinstance(p, TopKLogitsWarper)]


def test_the_model_default_would_add_a_top_k(top_k_trap) -> None:
    """Without an explicit top_k, transformers samples from the top 50 (what the backend
    must override)."""
    model, tokenizer, built = top_k_trap
    enc = tokenizer(["Hi"], return_tensors="pt")
    built.clear()
    model.generate(**enc, do_sample=True, max_new_tokens=1, pad_token_id=tokenizer.pad_token_id)
    assert _top_ks(built[-1]) == [50]


def test_hf_sampling_has_no_hidden_top_k(top_k_trap) -> None:
    from transformers.generation.logits_process import TopPLogitsWarper

    from cream_engine.backends.hf import HFBackend

    model, tokenizer, built = top_k_trap
    backend = HFBackend(model, tokenizer, device="cpu", batch_size=2)
    for kwargs in ({}, {"top_k": 0}):  # the default is off, too
        built.clear()
        backend.generate(CHAT, n=2, temperature=0.8, top_p=0.9, max_new_tokens=2, seed=0,
                         **kwargs)
        assert built and _top_ks(built[-1]) == []
        # the spy sees the sampling warpers: top-p is there, as asked
        assert [p.top_p for p in built[-1] if isinstance(p, TopPLogitsWarper)] == [
            pytest.approx(0.9)]


def test_hf_applies_an_explicit_top_k(top_k_trap) -> None:
    from cream_engine.backends.hf import HFBackend

    model, tokenizer, built = top_k_trap
    backend = HFBackend(model, tokenizer, device="cpu", batch_size=2)
    built.clear()
    backend.generate(CHAT, n=2, temperature=0.8, top_p=1.0, max_new_tokens=2, seed=0, top_k=7)
    assert _top_ks(built[-1]) == [7]
    built.clear()  # greedy: no sampling warpers at all, whatever top_k says
    backend.generate(CHAT, n=2, temperature=0.0, top_p=1.0, max_new_tokens=2, seed=0, top_k=7)
    assert _top_ks(built[-1]) == []


class _Recording:
    """Stands in for an engine process: keeps the requests, answers each prompt n times."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, message: dict) -> None:
        self.sent.append(message)

    def receive(self, timeout: float, doing: str) -> dict:
        m = self.sent[-1]
        return {"ok": [[[5]] * m["n"] for _ in m["prompts"]]}


def _fake_vllm(made: list[dict]) -> types.ModuleType:
    """Just enough of `vllm` for `vllm_engine.serve`: records each SamplingParams' settings."""
    class LLM:
        def __init__(self, **settings) -> None:
            self.llm_engine = SimpleNamespace(
                model_config=SimpleNamespace(max_model_len=settings["max_model_len"]),
                engine_core=SimpleNamespace(shutdown=lambda: None))

        def generate(self, prompts, params, use_tqdm=False):
            return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=[5])] * p.n)
                    for p in params]

    def sampling_params(**kwargs):
        made.append(kwargs)
        return SimpleNamespace(**kwargs)

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, sampling_params
    return module


def test_vllm_sends_top_k_to_its_sampling_params(tiny_model_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Backend request -> engine process -> vllm.SamplingParams, without vLLM itself: top_k
    arrives as given, 0 (vLLM's "off") by default and when greedy."""
    from transformers import AutoTokenizer

    from cream_engine.backends.vllm import VLLMBackend
    from cream_engine.backends.vllm_engine import serve

    backend = VLLMBackend.__new__(VLLMBackend)  # no engine process: a recording stand-in
    backend.tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    backend.max_model_len, engine = 2048, _Recording()
    backend.engines = [engine]
    kw = {"n": 2, "top_p": 0.9, "max_new_tokens": 3, "seed": 0}
    backend.generate(CHAT, temperature=0.8, top_k=7, **kw)
    backend.generate(CHAT, temperature=0.8, **kw)
    backend.generate(CHAT, temperature=0.0, top_k=7, **kw)
    assert [m["top_k"] for m in engine.sent] == [7, 0, 0]

    made: list[dict] = []
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(made))
    settings = {"model": "m", "dtype": "float32", "seed": 0, "tensor_parallel_size": 1,
                "gpu_memory_utilization": 0.1, "max_model_len": 2048, "enforce_eager": True,
                "trust_remote_code": False}
    out = io.StringIO()
    serve(settings, out, [json.dumps(m) + "\n" for m in engine.sent])
    replies = [json.loads(line) for line in out.getvalue().splitlines()]
    assert replies[0]["ready"] and all("ok" in r for r in replies[1:])
    assert [p["top_k"] for p in made] == [7, 0, 0]
