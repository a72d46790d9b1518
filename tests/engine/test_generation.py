"""Backends and sequence log-probabilities on the tiny model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cream_engine.backends import BackendError, choose_backend
from cream_engine.logprobs import encode_pair, sequence_logprobs

CHATS = [[{"role": "user", "content": "Hi."}],
         [{"role": "user", "content": "Explain photosynthesis to a child in two sentences."}],
         [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    from cream_engine.models import load_model

    return load_model(str(tiny_model_dir), tiny_model_dir.parent)


def test_auto_picks_vllm_only_with_a_gpu_and_vllm() -> None:
    assert choose_backend("auto", cuda_available=True, vllm_available=True) == "vllm"
    assert choose_backend("auto", cuda_available=False, vllm_available=True) == "hf"
    assert choose_backend("auto", cuda_available=True, vllm_available=False) == "hf"
    assert choose_backend("hf", cuda_available=True, vllm_available=True) == "hf"
    with pytest.raises(BackendError, match=r"pip install 'cream\[vllm\]'"):
        choose_backend("vllm", cuda_available=True, vllm_available=False)
    with pytest.raises(BackendError, match="needs a CUDA GPU"):
        choose_backend("vllm", cuda_available=False, vllm_available=True)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_vllm_backend_without_vllm_says_what_to_install() -> None:
    from cream_engine.backends.vllm import VLLMBackend

    with pytest.raises(BackendError, match=r"pip install 'cream\[vllm\]'"):
        VLLMBackend("some/model", dtype="bfloat16", seed=0)


def test_hf_generates_n_samples_per_prompt_seeded(tiny) -> None:
    from cream_engine.backends.hf import HFBackend

    model, tok = tiny
    side = tok.padding_side
    backend = HFBackend(model, tok, device="cpu", batch_size=2)
    kw = dict(n=3, temperature=0.8, top_p=0.95, max_new_tokens=6, seed=11)
    done = []
    first = backend.generate(CHATS, progress=done.append, **kw)
    assert [len(x) for x in first] == [3, 3, 3] and sum(done) == 3
    assert backend.generate(CHATS, **kw) == first           # same seed, same samples
    assert backend.generate(CHATS, **{**kw, "seed": 12}) != first
    assert tok.padding_side == side  # generation pads left only while it generates


def test_hf_left_padding_does_not_change_greedy_answers(tiny) -> None:
    from cream_engine.backends.hf import HFBackend

    model, tok = tiny
    kw = dict(n=2, temperature=0.0, top_p=1.0, max_new_tokens=5, seed=0)
    batched = HFBackend(model, tok, device="cpu", batch_size=3).generate(CHATS, **kw)
    single = HFBackend(model, tok, device="cpu", batch_size=1).generate(CHATS, **kw)
    assert batched == single
    assert all(a == b for a, b in batched)  # greedy: n copies of one answer


def test_sequence_logprobs_mask_the_prompt_and_survive_batching(tiny) -> None:
    import torch

    model, tok = tiny
    items = [(CHATS[i % 3], text) for i, text in
             enumerate(["Yes.", "A much longer answer with many more tokens in it.", "4", ""])]
    batched = sequence_logprobs(model, tok, items, batch_size=4)
    one_by_one = [sequence_logprobs(model, tok, [it], batch_size=1)[0] for it in items]
    for a, b in zip(batched, one_by_one):
        assert a.tokens == b.tokens and a.logp == pytest.approx(b.logp, abs=1e-4)
    # by hand for the first item: the response tokens (and the turn's end, "<|im_end|>\n",
    # as TRL's DPOTrainer tokenises a completion) only
    ids, start = encode_pair(tok, items[0][0], items[0][1], max_length=1024)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].float(), -1)
    expected = sum(logp[i - 1, ids[i]].item() for i in range(start, len(ids)))
    assert batched[0].logp == pytest.approx(expected, abs=1e-4)
    assert batched[0].tokens == len(ids) - start == len(tok("Yes.")["input_ids"]) + 2
    assert batched[3].tokens == 2  # an empty response still scores its end of turn
