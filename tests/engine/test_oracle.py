"""The Oracle baseline (issue 14, item 2): the bundled tiny reward model, the external reward
model's scores (`stages/oracle.py`), the refusal of models that are not one-output
classifiers, and pairs picked by the oracle's reward with weight 1."""

from __future__ import annotations

import json
import math
import shutil
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from cream_engine import paths
from cream_engine.config import from_dict
from cream_engine.errors import ModelError
from cream_engine.files import read_jsonl, write_jsonl
from cream_engine.methods import get_method
from cream_engine.models import MARKER, load_reward_model, resolve_model
from cream_engine.stages import pairs
from cream_engine.stages.oracle import oracle_rewards, reward_text

CHATS = [[{"role": "user", "content": "What is 2 + 2?"}],
         [{"role": "system", "content": "Be brief."},
          {"role": "user", "content": "Name a colour."}]]
ITEMS = [(CHATS[0], "4"), (CHATS[0], "Five, I think, or maybe four."), (CHATS[1], "Blue."),
         (CHATS[1], "The colour of the sea at noon, which is blue. " * 6), (CHATS[0], "")]


@pytest.fixture(scope="module")
def reward_dir(models_home: Path) -> Path:
    return Path(resolve_model("bundled:tiny-reward", models_home))


class _Bars:
    """ctx.progress as the score stage calls it: counts what each bar was told."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    @contextmanager
    def __call__(self, t: int, stage: str, total: int, label: str | None = None):
        done = [0]
        yield SimpleNamespace(advance=lambda n=1: done.__setitem__(0, done[0] + n))
        self.calls.append((t, stage, total, label, done[0]))


def _ctx(home: Path, model: str = "bundled:tiny-reward", batch_size: int = 2,
         max_length: int = 512) -> SimpleNamespace:
    config = from_dict({"run": {"method": "oracle", "model": "bundled:tiny-random"},
                        "oracle": {"model": model, "batch_size": batch_size},
                        "train": {"max_length": max_length}})
    return SimpleNamespace(config=config, home=home, device="cpu", progress=_Bars(),
                           close_backends=lambda: None)


# -- the bundled tiny reward model ------------------------------------------------------------


def test_tiny_reward_is_a_seeded_one_output_classifier_built_once(reward_dir: Path,
                                                                  models_home: Path,
                                                                  tmp_path: Path) -> None:
    import torch

    model, tok = load_reward_model("bundled:tiny-reward", models_home)
    assert type(model).__name__ == "LlamaForSequenceClassification"
    assert model.config.num_labels == 1 and model.score.weight.shape[0] == 1
    # padding is a token a reply never ends with, so the classifier reads the <|im_end|>
    assert model.config.pad_token_id == tok.pad_token_id == 0 != tok.eos_token_id
    assert 1_000_000 < sum(p.numel() for p in model.parameters()) < 10_000_000
    assert (reward_dir / "model.safetensors").is_file()
    before = (reward_dir / MARKER).stat().st_mtime_ns
    assert Path(resolve_model("bundled:tiny-reward", models_home)) == reward_dir
    assert (reward_dir / MARKER).stat().st_mtime_ns == before  # not built again
    again, _ = load_reward_model("bundled:tiny-reward", tmp_path)  # built anew, elsewhere
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


# -- the oracle's rewards ---------------------------------------------------------------------


def test_oracle_rewards_one_finite_float_per_item(models_home: Path) -> None:
    ctx = _ctx(models_home)
    rewards = oracle_rewards(ctx, 3, ITEMS)
    assert len(rewards) == len(ITEMS)
    assert all(isinstance(r, float) and math.isfinite(r) for r in rewards)
    assert len(set(rewards)) == len(rewards)  # different responses, different rewards
    assert ctx.progress.calls == [(3, "score", len(ITEMS), "oracle", len(ITEMS))]
    assert oracle_rewards(_ctx(models_home), 3, ITEMS) == rewards  # the same input again
    # the same item twice, in other batches: the same reward (up to float rounding)
    same = oracle_rewards(_ctx(models_home), 3, [ITEMS[1], ITEMS[1], ITEMS[0]])
    assert same == pytest.approx([rewards[1], rewards[1], rewards[0]], abs=1e-5)


def test_oracle_rewards_do_not_depend_on_batch_size(models_home: Path) -> None:
    """Right padding with the model's pad token changes no score: each batch size groups
    (and pads) the items differently."""
    one = oracle_rewards(_ctx(models_home, batch_size=1), 0, ITEMS)
    for size in (2, 3, 8):
        other = oracle_rewards(_ctx(models_home, batch_size=size), 0, ITEMS)
        assert max(abs(a - b) for a, b in zip(one, other)) < 1e-5, size


def test_the_reward_model_reads_its_own_chat_template(models_home: Path) -> None:
    _, tok = load_reward_model("bundled:tiny-reward", models_home)
    text, templated = reward_text(tok, CHATS[1], "Blue.")
    assert templated and text.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert text.endswith("<|im_start|>assistant\nBlue.<|im_end|>\n")
    plain = SimpleNamespace(chat_template=None)  # a tokenizer without one: plain text
    assert reward_text(plain, CHATS[1], "Blue.") == ("Be brief.\n\nName a colour.\n\nBlue.", False)


def test_long_items_are_cut_at_max_length(models_home: Path) -> None:
    """A response past [train] max_length is scored on its first max_length tokens: the same
    reward whatever follows."""
    long = [(CHATS[0], "word " * 200), (CHATS[0], "word " * 200 + "and then something else")]
    a, b = oracle_rewards(_ctx(models_home, max_length=64), 0, long)
    assert a == b


# -- models that are not reward models --------------------------------------------------------


def _one_line_oracle_error(ctx: SimpleNamespace, match: str) -> str:
    with pytest.raises(ModelError, match=match) as e:
        oracle_rewards(ctx, 0, ITEMS[:2])
    line = str(e.value)
    assert line.startswith("[oracle] model ") and "\n" not in line
    return line


def test_a_causal_lm_is_refused(tiny_model_dir: Path, models_home: Path) -> None:
    line = _one_line_oracle_error(_ctx(models_home, model=str(tiny_model_dir)),
                                  "is not a sequence classifier")
    assert "'LlamaForCausalLM'" in line


def test_a_classifier_with_two_labels_is_refused(reward_dir: Path, models_home: Path,
                                                 tmp_path: Path) -> None:
    two = tmp_path / "two-labels"
    shutil.copytree(reward_dir, two)
    config = json.loads((two / "config.json").read_text())
    config["id2label"] = {"0": "bad", "1": "good"}
    config["label2id"] = {"bad": 0, "good": 1}
    (two / "config.json").write_text(json.dumps(config))
    _one_line_oracle_error(_ctx(models_home, model=str(two)), "with 2 labels")


def test_a_classifier_without_trained_head_weights_is_refused(tiny_model_dir: Path,
                                                              models_home: Path,
                                                              tmp_path: Path) -> None:
    """A causal LM relabelled as a classifier would get a random score head: refused."""
    fake = tmp_path / "relabelled"
    shutil.copytree(tiny_model_dir, fake)
    config = json.loads((fake / "config.json").read_text())
    config.update(architectures=["LlamaForSequenceClassification"],
                  id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
    (fake / "config.json").write_text(json.dumps(config))
    _one_line_oracle_error(_ctx(models_home, model=str(fake)), "lack score.weight")


def test_a_missing_folder_names_the_oracle_field(models_home: Path, tmp_path: Path) -> None:
    _one_line_oracle_error(_ctx(models_home, model=str(tmp_path / "nope")), "no such folder")


# -- pairs by the oracle's reward -------------------------------------------------------------


def test_the_oracle_method_is_plain_dpo_on_the_oracle_reward() -> None:
    oracle = get_method("oracle")
    assert (oracle.pair_reward, oracle.uses_judge, oracle.labeled) == ("oracle", False, True)
    assert oracle.pair_weight(0.1, 0.2, "average") == oracle.pair_weight(None, None,
                                                                         "dynamic") == 1.0


def test_pairs_are_the_oracles_best_and_worst_with_weight_one(tmp_path: Path) -> None:
    """pairs.run on records as the consistency stage writes them for method oracle: the
    implicit reward would pick other responses; the oracle's argmax/argmin are the pair."""
    config = from_dict({"run": {"method": "oracle", "model": "bundled:tiny-random"},
                        "oracle": {"model": "bundled:tiny-reward"}})
    written: dict = {}
    ctx = SimpleNamespace(config=config, device="cpu", run_id="r",
                          artifact=lambda t, stage: tmp_path / paths.ARTIFACTS[stage],
                          seed=lambda t, stage: 0,
                          store=SimpleNamespace(upsert_iteration=lambda *a, **k: written.update(k)))
    responses = ["a", "b", "c", "d"]
    write_jsonl(ctx.artifact(0, "generate"), [
        {"prompt_id": p, "prompt": "q", "messages": CHATS[0], "responses": responses}
        for p in ("p1", "p2", "p3")])
    write_jsonl(ctx.artifact(0, "score"), [{"prompt_id": p} for p in ("p1", "p2", "p3")])
    write_jsonl(ctx.artifact(0, "consistency"), [
        {"prompt_id": "p1", "tau": 0.2, "consistency": 0.6,
         "rewards": {"implicit": [4.0, 3.0, 2.0, 1.0], "previous_implicit": None,
                     "oracle": [0.5, -1.5, 2.5, 0.0]}},
        {"prompt_id": "p2", "tau": None, "consistency": None,  # a tie: dropped
         "rewards": {"implicit": [1.0, 2.0, 3.0, 4.0], "previous_implicit": None,
                     "oracle": [1.0, 1.0, 1.0, 1.0]}},
        {"prompt_id": "p3", "tau": -1.0, "consistency": 0.0,
         "rewards": {"implicit": [1.0, 2.0, 3.0, 4.0], "previous_implicit": None,
                     "oracle": [-0.25, 0.75, -3.0, 0.5]}}])
    summary = pairs.run(ctx, 0)
    got = read_jsonl(ctx.artifact(0, "pairs"))
    assert [(p["prompt_id"], p["chosen_index"], p["rejected_index"]) for p in got] == \
        [("p1", 2, 1), ("p3", 1, 2)]
    assert [p["chosen"] for p in got] == ["c", "b"]
    assert [p["weight"] for p in got] == [1.0, 1.0]  # whatever the consistency
    assert [p["rewards"] for p in got] == [[2.5, -1.5], [0.75, -3.0]]
    assert got[0]["other_rewards"] == {"implicit": [2.0, 3.0]}
    assert summary["pairs"] == 2 and summary["dropped"] == 1
    assert written == {"n_pairs": 2, "agreement": None}  # no judge: nothing to agree with


@pytest.mark.slow
def test_a_tiny_oracle_run_ranks_by_the_reward_model(tiny_model_dir: Path, tmp_path: Path
                                                     ) -> None:
    """The whole loop with method oracle: every pair is the reward model's best and worst
    response, with weight 1, and the scores are kept beside the implicit rewards."""
    from tests.engine.helpers import engine, finish, new_run, tiny_config

    run_dir = new_run(tmp_path / "home", tiny_config(
        tiny_model_dir, run={"method": "oracle", "iterations": 1},
        oracle={"model": "bundled:tiny-reward"}, eval={"enabled": False}))
    code, err = finish(engine(run_dir), timeout=600)
    assert code == 0, err[-3000:]
    rows = {r["prompt_id"]: r for r in read_jsonl(run_dir / "iter-0" / "consistency.jsonl")}
    pairs = read_jsonl(run_dir / "iter-0" / "pairs.jsonl")
    assert pairs
    for p in pairs:
        oracle = rows[p["prompt_id"]]["rewards"]["oracle"]
        assert len(oracle) == 4 and p["weight"] == 1.0
        assert oracle[p["chosen_index"]] == max(oracle)
        assert oracle[p["rejected_index"]] == min(oracle)
