"""What reaches the engine is bounded and safe: prompts are measured with the model's own
tokenizer, exactly as generation feeds them, and the engine measures again (the file may have
changed since it was submitted); pickle checkpoints are refused, and converted weights-only."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from cream_engine.config import from_dict
from cream_engine.errors import DataError, ModelError
from cream_engine.modelfiles import check_model_folder
from cream_engine.runs import check_inputs, count_tokens, create_run
from cream_engine.store import Store
from tests.engine.helpers import tiny_config

REPO = Path(__file__).resolve().parents[2]


def write_prompts(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def test_counts_are_what_generation_feeds_the_model(tmp_path: Path, tiny_model_dir: Path
                                                    ) -> None:
    from cream_engine.backends.hf import HFBackend
    from cream_engine.models import load_model

    texts = ["hi", "What is 2 + 2?", "line one\nline two\u2028same line", "é " * 50]
    config = from_dict(tiny_config(tiny_model_dir, data={
        "prompts": str(write_prompts(tmp_path / "p.jsonl", texts))}))
    context, counts = count_tokens(config, tmp_path / "home")
    model, tokenizer = load_model(str(tiny_model_dir), tmp_path / "home")
    backend = HFBackend(model, tokenizer, device="cpu", batch_size=1)
    fed = [backend._encode([backend.render([{"role": "user", "content": t}])])["input_ids"]
           .shape[1] for t in texts]
    assert counts == fed
    assert context == 2048 == model.config.max_position_embeddings
    assert not (tmp_path / "home").exists()  # measuring writes nothing


def test_the_engine_measures_again(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A prompt file that grew a long prompt after submit: refused, or skipped and counted."""
    from cream_engine.context import RunContext

    prompts = write_prompts(tmp_path / "p.jsonl", [f"question {i}?" for i in range(10)])
    cfg = tiny_config(tiny_model_dir, data={"prompts": str(prompts)},
                      run={"iterations": 1}, eval={"win_rate_prompts": 2})
    home = tmp_path / "home"
    assert len(check_inputs(from_dict(cfg), home).prompts) == 10
    store = Store.open(home)
    refuse = store.run_path(store.require_run(create_run(store, home, from_dict(cfg))))
    cfg["data"]["long_prompts"] = "skip"
    skip = store.run_path(store.require_run(create_run(store, home, from_dict(cfg))))
    write_prompts(prompts, [f"question {i}?" for i in range(10)] + ["question 3?", "w " * 600])
    with pytest.raises(DataError, match=r"p\.jsonl:12: prompt is \d+ tokens, at most 496 fit "
                                        r"\(\[train\] max_length 512 - \[generate\] "
                                        r"max_new_tokens 16\)"):
        RunContext.open(refuse, store).prompts(0)
    ctx = RunContext.open(skip, store)
    used = ctx.all_prompts()
    assert [p.line for p in used] == list(range(1, 11))  # the duplicate and the long one out
    from cream_engine.stages.evaluate import held_out

    trained = {p.id for p in ctx.prompts(0)}
    assert len(trained) == 8 and not trained & {p.id for p in held_out(ctx)}


def _pickle_folder(src: Path, dst: Path) -> Path:
    """A copy of `src` whose weights are a torch pickle, as older checkpoints are (transformers
    5 writes only safetensors, so the pickle is written with torch.save)."""
    import torch
    from safetensors.torch import load_file

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save(load_file(src / "model.safetensors"), dst / "pytorch_model.bin")
    return dst


def engine_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cream_engine", *args], capture_output=True,
                          text=True, timeout=300)


def test_pickle_weights_are_refused_then_converted(tmp_path: Path, tiny_model_dir: Path) -> None:
    from cream_engine.models import load_model

    pickled = _pickle_folder(tiny_model_dir, tmp_path / "pickled")
    with pytest.raises(ModelError, match="only pickle weights") as refused:
        check_model_folder(pickled, "[run] model")
    command = re.search(r"`(python -m cream_engine convert-model [^`]+)`", str(refused.value))
    assert command is not None
    with pytest.raises(ModelError, match="only pickle weights"):  # the engine refuses it too
        load_model(str(pickled), tmp_path / "home")
    r = subprocess.run(command.group(1).replace("python", sys.executable, 1), shell=True,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    converted = Path(str(pickled) + "-safetensors")
    check_model_folder(converted, "[run] model")
    a, _ = load_model(str(converted), tmp_path / "home")
    b, _ = load_model(str(tiny_model_dir), tmp_path / "home")
    assert all((x == y).all() for x, y in zip(a.state_dict().values(), b.state_dict().values()))


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_never_runs(tmp_path: Path, tiny_model_dir: Path) -> None:
    import pickle

    folder = _pickle_folder(tiny_model_dir, tmp_path / "evil")
    marker = tmp_path / "pwned"
    with open(folder / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"model.embed_tokens.weight": _Payload(marker)}, fh)
    with pytest.raises(ModelError, match="only pickle weights"):
        check_model_folder(folder, "[run] model")
    r = engine_cli("convert-model", str(folder), str(tmp_path / "out"))
    assert r.returncode != 0 and not marker.exists()
    assert "Traceback" not in r.stderr and r.stderr.startswith("cream: error: ")
    assert not (tmp_path / "out").exists()


def test_torch_floor_loads_weights_only_by_default() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch,) = [d for d in deps if re.match(r"torch\b", d)]
    floor = tuple(int(x) for x in re.search(r">=\s*([\d.]+)", torch).group(1).split("."))
    assert floor >= (2, 6)  # torch.load(weights_only=True) by default since 2.6


def test_generation_refuses_an_input_past_the_context(tiny_model_dir: Path, tmp_path: Path
                                                      ) -> None:
    """Any other text (a judge prompt, an evaluation item) stops before the model, with one
    line, instead of allocating for it."""
    from cream_engine.backends.hf import HFBackend
    from cream_engine.errors import BackendError
    from cream_engine.models import load_model

    model, tokenizer = load_model(str(tiny_model_dir), tmp_path)
    backend = HFBackend(model, tokenizer, device="cpu", batch_size=2)
    with pytest.raises(BackendError, match=r"an input of \d+ tokens \(\+ 16 to generate\) "
                                           r"exceeds the model's context of 2048 tokens"):
        backend.generate([[{"role": "user", "content": "w " * 2100}]], n=2, temperature=1.0,
                         top_p=1.0, max_new_tokens=16, seed=0)
    out = backend.generate([[{"role": "user", "content": "w " * 1900}]], n=2,
                           temperature=1.0, top_p=1.0, max_new_tokens=4, seed=0)
    assert len(out[0]) == 2
