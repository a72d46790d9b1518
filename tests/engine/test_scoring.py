"""Scoring (issue 13, parts 4 and 5): the score stage's log π_{M_t}(y|x) is TRL's reference
log-prob of the same pair, and the chunked LM head gives the numbers full logits give.

fp32 note: a sum of log-probabilities is an fp32 number whose step is 7.6e-6 below 128 nats and
1.5e-5 from 128 to 256. The per-token values below agree with TRL's to the bit; a sum can still
differ in its last bit where TRL's batch pads the sequence to another width (the reduction
groups the terms by position). So the 1e-5 test uses responses short enough for the sums to stay
under 128 nats, and longer sequences are held to one step of the sum's fp32 value.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cream_engine.files import read_jsonl
from cream_engine.logprobs import (
    encode_pair,
    encoded_logprobs,
    full_logits_logprobs,
    head_logprobs,
    token_logprobs,
)
from cream_engine.stages.pairs import REF_FIELDS, reference_logps
from tests.engine.helpers import new_run, tiny_config

CHATS = [[{"role": "user", "content": "What is 2 + 2?"}],
         [{"role": "system", "content": "Be brief."},
          {"role": "user", "content": "Name a colour."}],
         [{"role": "user", "content": "Write one sentence about the sea, then stop."}]]
RESPONSES = ["4", "Blue, like the sky over the harbour at noon.", "",
             "\n\nA reply after a blank line",  # merges with the template's newline
             " leading space", "The sea is wide. " * 12]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    from cream_engine.models import load_model

    return load_model(str(tiny_model_dir), tiny_model_dir.parent.parent)


def _trl_reference(model, tokenizer, rows: list[dict], max_length: int, tmp: Path):
    """TRL's own precompute on (messages, chosen, rejected) rows: (train dataset, chosen, rejected)."""
    from cream_engine.config import TrainConfig
    from cream_engine.trainer import dpo_args, make_trainer

    args = dpo_args(TrainConfig(max_length=max_length, batch_size=2), output_dir=tmp,
                    seed=0, device="cpu")
    trainer = make_trainer(model, tokenizer, [
        {"prompt": m, "chosen": [{"role": "assistant", "content": c}],
         "rejected": [{"role": "assistant", "content": r}], "weight": 1.0}
        for m, c, r in rows], args)
    ds = trainer.train_dataset
    return ds, ds["ref_chosen_logps"], ds["ref_rejected_logps"]


def _ulp(x: float) -> float:
    return float(np.spacing(np.float32(abs(x))))


# -- part 4: the score stage's numbers are TRL's ---------------------------------------------


def test_score_stage_logps_are_trls_reference_logps(tiny_model_dir: Path, tmp_path: Path
                                                    ) -> None:
    """A real tiny iteration's generate → score → consistency → pairs, then TRL's precompute on
    the same pairs (as the trainer built it before it took them from the pairs)."""
    from cream_engine.context import RunContext
    from cream_engine.stages import consistency, generate, pairs, score
    from cream_engine.store import open_store

    home = tmp_path / "home"
    config = tiny_config(tiny_model_dir, run={"iterations": 1},
                         generate={"max_new_tokens": 4}, data={"prompts_per_iteration": 8})
    run_dir = new_run(home, config)
    ctx = RunContext.open(run_dir, open_store(home))
    for stage in (generate, score, consistency, pairs):
        stage.run(ctx, 0)
    written = read_jsonl(ctx.artifact(0, "pairs"))
    model, tokenizer = ctx.load(ctx.model_path(0))

    ds, ref_chosen, ref_rejected = _trl_reference(
        model, tokenizer, [(p["messages"], p["chosen"], p["rejected"]) for p in written],
        ctx.config.train.max_length, tmp_path / "trainer")
    assert len(ds) == len(written)  # no pair dropped: the rows line up
    with_fields = [k for k, p in enumerate(written) if REF_FIELDS[0] in p]
    assert len(with_fields) >= len(written) // 2, "most pairs should bring their reference"
    diffs = [max(abs(written[k]["ref_chosen_logps"] - ref_chosen[k]),
                 abs(written[k]["ref_rejected_logps"] - ref_rejected[k])) for k in with_fields]
    # 4 new tokens keep every sum under 128 nats, where one fp32 step is 7.6e-6
    assert max(abs(written[k][f]) for k in with_fields for f in REF_FIELDS) < 128
    assert max(diffs) <= 1e-5
    # a pair without them is one whose responses start at different tokens in TRL's sequences
    for k, p in enumerate(written):
        if k not in with_fields:
            assert len(ds[k]["prompt_ids"]) < max(
                encode_pair(tokenizer, p["messages"], y, 1024)[1]
                for y in (p["chosen"], p["rejected"]))


def test_encoded_logprobs_match_trl_on_every_kind_of_pair(tiny, tmp_path: Path) -> None:
    """Hand-made pairs: short and long responses, an empty one, one that merges with the
    prompt's last token, a truncated one (keep_start)."""
    model, tok = tiny
    rows = [(CHATS[k % 3], RESPONSES[k % 6], RESPONSES[(k * 5 + 1) % 6]) for k in range(10)]
    max_length = 96  # the long response is cut at the end, as TRL cuts it
    ds, ref_chosen, ref_rejected = _trl_reference(model, tok, rows, max_length,
                                                  tmp_path / "trainer")
    items = [(m, y) for m, c, r in rows for y in (c, r)]
    encoded = [encode_pair(tok, m, y, max_length) for m, y in items]
    ours = encoded_logprobs(model, tok, encoded, batch_size=3)
    assert any(len(ids) == max_length for ids, _ in encoded)  # the truncation case is there
    compared = 0
    for k, (chosen, rejected) in enumerate(zip(ref_chosen, ref_rejected)):
        a, b = encoded[2 * k][1], encoded[2 * k + 1][1]
        if a != b:  # TRL starts both at the earlier start: what pairs leaves out
            assert len(ds[k]["prompt_ids"]) == min(a, b)
            continue
        assert len(ds[k]["prompt_ids"]) == a
        assert ds[k]["prompt_ids"] + ds[k]["chosen_ids"][:max_length - a] == encoded[2 * k][0]
        for mine, theirs in ((ours[2 * k].logp, chosen), (ours[2 * k + 1].logp, rejected)):
            assert abs(mine - theirs) <= max(1e-5, _ulp(theirs))
        compared += 1
    assert compared >= 6


def test_encode_pair_is_the_whole_conversation_with_the_turns_end(tiny) -> None:
    _, tok = tiny
    ids, start = encode_pair(tok, CHATS[0], "4", 1024)
    assert tok.decode(ids[start:]) == "4<|im_end|>\n"
    assert ids[:start] == tok.apply_chat_template(CHATS[0], tokenize=True, return_dict=True,
                                                  add_generation_prompt=True)["input_ids"]
    cut, cut_start = encode_pair(tok, CHATS[0], "4", start + 1)  # keep_start: the end goes
    assert (cut, cut_start) == (ids[:start + 1], start)
    ends, ends_start = encode_pair(tok, CHATS[0], "4", 4, truncation="keep_end")
    assert (ends, ends_start) == (ids[-4:], 1)
    # a response that begins with a newline merges with the template's: it starts earlier
    _, early = encode_pair(tok, CHATS[0], "\n\nA reply", 1024)
    assert early < start


def test_reference_logps_only_where_trl_computes_the_same() -> None:
    def ctx(dtype: str = "auto", device: str = "cpu", max_length: int = 100):
        return SimpleNamespace(device=device, config=SimpleNamespace(
            train=SimpleNamespace(dtype=dtype, max_length=max_length)))

    rec = {"prompt_tokens": [40, 40, 39], "dtype": "float32",
           "logp": {"current": [-10.0, -20.0, -30.0], "reference": [-1.0, -2.0, -3.0]}}
    assert reference_logps(ctx(), rec, 1, 0) == {"ref_chosen_logps": -20.0,
                                                 "ref_rejected_logps": -10.0}
    assert reference_logps(ctx(), rec, 0, 2) == {}                      # different starts
    assert reference_logps(ctx(max_length=40), rec, 0, 1) == {}         # TRL drops the pair
    assert reference_logps(ctx(device="cuda"), rec, 0, 1) == {}         # fp32 under autocast
    assert reference_logps(ctx(dtype="bfloat16"), rec, 0, 1) == {}      # another precision
    assert reference_logps(ctx(dtype="float32", device="cuda"), rec, 0, 1) != {}
    old = {k: v for k, v in rec.items() if k != "prompt_tokens"}          # an older score file
    assert reference_logps(ctx(), old, 0, 1) == {}


# -- part 5: the chunked LM head ---------------------------------------------------------------


def test_chunked_head_equals_full_logits(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per token within 1e-5 of log_softmax over the full fp32 logits, with tiles small enough
    that the positions and the vocabulary (49152 > one 32768-column tile) both take several."""
    from cream_engine import logprobs

    model, tok = tiny
    monkeypatch.setattr(logprobs, "CHUNK_BYTES", 7 * 4 * 32768)  # 7 positions per tile
    encoded = [encode_pair(tok, CHATS[k % 3], RESPONSES[k % 6], 1024) for k in range(8)]
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.zeros(len(encoded), width, dtype=torch.long)
    attn = torch.zeros_like(ids)
    mask = torch.zeros(ids.shape, dtype=torch.bool)
    for r, (seq, start) in enumerate(encoded):
        ids[r, :len(seq)], attn[r, :len(seq)], mask[r, start:len(seq)] = torch.tensor(seq), 1, True
    with torch.no_grad():
        chunked = token_logprobs(model, ids, attn, mask)
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
    full = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    full = full * mask[:, 1:]
    assert (chunked[~mask[:, 1:]] == 0).all()
    assert (chunked - full).abs().max().item() <= 1e-5
    # the sums as the score stage reports them, against the old way (all logits at once)
    new = encoded_logprobs(model, tok, encoded, batch_size=3)
    old = full_logits_logprobs(model, tok, encoded, batch_size=3)
    for a, b in zip(new, old):
        assert a.tokens == b.tokens and abs(a.logp - b.logp) <= max(1e-5, 2 * _ulp(b.logp))


def test_head_logprobs_with_a_bias_and_one_tile() -> None:
    g = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(5, 8, generator=g), torch.randn(40000, 8, generator=g)
    bias, targets = torch.randn(40000, generator=g), torch.tensor([0, 39999, 32767, 32768, 7])
    got = head_logprobs(hidden, targets, weight, bias)
    want = torch.log_softmax(hidden @ weight.T + bias, -1)[torch.arange(5), targets]
    assert torch.allclose(got, want, atol=1e-5, rtol=0)


def test_heads_with_extras_go_through_the_models_own_forward(tiny, monkeypatch) -> None:
    """A head with soft-capping (Gemma 2) or a logit scale is scored through the model's own
    forward: here a Llama told it has one (which its forward ignores) gives the same numbers."""
    from cream_engine import logprobs

    model, tok = tiny
    encoded = [encode_pair(tok, CHATS[k % 3], RESPONSES[k % 6], 1024) for k in range(4)]
    plain = encoded_logprobs(model, tok, encoded, batch_size=2)
    calls = []
    forward = logprobs._full_logits_logprobs
    monkeypatch.setattr(logprobs, "_full_logits_logprobs",
                        lambda *a: calls.append(1) or forward(*a))
    monkeypatch.setattr(model.config, "final_logit_softcapping", 30.0, raising=False)
    via_forward = encoded_logprobs(model, tok, encoded, batch_size=2)
    assert len(calls) == 2  # one per batch
    for a, b in zip(plain, via_forward):
        assert a.tokens == b.tokens and abs(a.logp - b.logp) <= max(1e-5, 2 * _ulp(a.logp))
