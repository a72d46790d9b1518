"""The vllm backend on SmolLM2-135M for real: the same greedy text and next-token log-probs as
the hf backend (fp32 both), request errors and a dying engine as one line, and a teardown that
ends the engine process and gives its memory back."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from cream_engine.errors import BackendError

pytestmark = pytest.mark.vllm

QUESTIONS = [
    "What is the capital of France?", "Name three primary colors.",
    "Write one sentence about the sea.", "What is 7 times 8?",
    "Give a synonym for happy.", "Why is the sky blue? Answer briefly.",
    "Translate 'good morning' into Spanish.", "List two fruits that are red.",
    "What does a thermometer measure?", "Say hello to a new colleague.",
    "How many legs does a spider have?", "What is the opposite of cold?",
    "Name a planet in our solar system.", "Suggest a name for a pet cat.",
    "What do bees make?", "Describe a tree in five words.",
]
CHATS = [[{"role": "user", "content": q}] for q in QUESTIONS]
NEW_TOKENS = 24


def mem_available() -> int:
    """Bytes of RAM the system could give out now (/proc/meminfo)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemAvailable in /proc/meminfo")


def rss(pid: int) -> int:
    """The engine's private memory (USS): what its exit gives back. Its RSS also counts the
    torch and vLLM libraries it shares with this process, which stay mapped."""
    private = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            private += int(line.split()[1]) * 1024
    return private


def gpu_free(cuda: bool) -> int | None:
    if not cuda:
        return None
    import torch

    return sum(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture(scope="module")
def hf(smollm2_dir: Path):
    import torch

    from cream_engine.backends.hf import HFBackend
    from cream_engine.models import load_model

    torch.set_num_threads(1)  # the engine process has the cores while it works; we wait
    model, tok = load_model(str(smollm2_dir), smollm2_dir.parent.parent, dtype="float32")
    return HFBackend(model, tok, device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def engine(smollm2_dir: Path, cuda: bool, engine_memory: float):
    """One engine for the module; the memory readings from before it started go with it. The
    teardown test closes it (the last test here); closing again is harmless."""
    from cream_engine.backends.vllm import VLLMBackend

    before = {"ram": mem_available(), "gpu": gpu_free(cuda)}
    start = time.monotonic()
    backend = VLLMBackend(str(smollm2_dir), dtype="float32", seed=0, cuda=cuda,
                          gpu_memory_utilization=engine_memory)
    print(f"\nvllm engine started in {time.monotonic() - start:.1f} s")
    yield backend, before
    backend.close()


def test_greedy_text_agrees_with_hf(engine, hf) -> None:
    backend, _ = engine
    start = time.monotonic()
    ours = backend.generate(CHATS, n=2, temperature=0.0, top_p=1.0,
                            max_new_tokens=NEW_TOKENS, seed=5)
    took = time.monotonic() - start
    start = time.monotonic()
    theirs = hf.generate(CHATS, n=2, temperature=0.0, top_p=1.0, max_new_tokens=NEW_TOKENS,
                         seed=5)
    print(f"\ngreedy 16 x {NEW_TOKENS} tokens: vllm {took:.1f} s, hf "
          f"{time.monotonic() - start:.1f} s")
    assert all(len(o) == 2 and o[0] == o[1] for o in ours)  # greedy: n copies of one answer
    same = sum(a[0] == b[0] for a, b in zip(ours, theirs))
    print(f"same greedy text on {same} of {len(CHATS)} prompts")
    for a, b in zip(ours, theirs):
        if a[0] != b[0]:
            print(f"  vllm: {a[0]!r}\n  hf:   {b[0]!r}")
    assert same >= 12
    assert sum(len(a[0].split()) for a in ours) > 5 * len(CHATS)  # real words came back


def test_sampling_gives_n_seeded_samples(engine) -> None:
    backend, _ = engine
    kw = {"n": 3, "temperature": 0.9, "top_p": 0.95, "max_new_tokens": 12}
    done: list[int] = []
    first = backend.generate(CHATS[:4], seed=7, progress=done.append, **kw)
    assert [len(x) for x in first] == [3, 3, 3, 3] and sum(done) == 4
    assert backend.generate(CHATS[:4], seed=7, **kw) == first  # a seed gives the same samples
    assert backend.generate(CHATS[:4], seed=8, **kw) != first
    # a prompt's samples do not depend on what else is in the batch (per-prompt seeds)
    assert backend.generate(CHATS[:2], seed=7, **kw) == first[:2]


def test_prompts_cut_in_chunks_come_back_in_input_order(engine, monkeypatch) -> None:
    """The prompts go to the engines in chunks (one round per engine count); the answers are
    put back in input order whatever the cut."""
    import cream_engine.backends.vllm as vllm_backend

    backend, _ = engine
    kw = {"n": 1, "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 6, "seed": 0}
    whole = backend.generate(CHATS, **kw)
    monkeypatch.setattr(vllm_backend, "CHUNK", 5)
    done: list[int] = []
    assert backend.generate(CHATS, progress=done.append, **kw) == whole
    assert done == [5, 5, 5, 1]


def test_next_token_logprobs_are_exact_for_any_token(engine, hf) -> None:
    """The judge's digits, and a token far outside the top 20 (vLLM's top-k would miss it):
    log p(token | text) within 0.05 nats of hf's full log-softmax."""
    backend, _ = engine
    tok = backend.tokenizer
    digits = [tok.convert_tokens_to_ids(str(d)) for d in range(6)]
    texts = [backend.render(c) + "The answer is fine. Score: " for c in CHATS]
    full = hf.next_token_logprobs(texts, list(range(len(tok))))
    rare = min(range(len(tok)), key=lambda i: full[0][i] if i not in digits else 0.0)
    ids = digits + [rare]
    ours = backend.next_token_logprobs(texts, ids)
    worst = max(abs(a - full[i][t]) for i, row in enumerate(ours) for a, t in zip(row, ids))
    ranks = [sum(x > full[i][rare] for x in full[i]) for i in range(len(texts))]
    print(f"\nnext-token log-probs: max |vllm - hf| = {worst:.5f} nats over {len(texts)} texts "
          f"x {len(ids)} tokens; token {rare} ranked {min(ranks)}..{max(ranks)}")
    assert all(math.isfinite(x) for row in ours for x in row)
    assert min(ranks) > 20
    assert worst <= 0.05


def test_a_bad_request_is_one_line_and_the_engine_serves_on(engine) -> None:
    backend, _ = engine
    with pytest.raises(BackendError) as info:  # an id past the vocabulary: vLLM refuses it
        backend.next_token_logprobs(["Hello"], [len(backend.tokenizer) + 10])
    assert "\n" not in str(info.value) and "vLLM engine" in str(info.value)
    with pytest.raises(BackendError, match="exceeds the vLLM engine's context"):
        backend.generate([[{"role": "user", "content": "hi " * backend.max_model_len}]],
                         n=1, temperature=0.0, top_p=1.0, max_new_tokens=4, seed=0)
    assert len(backend.generate(CHATS[:1], n=1, temperature=0.0, top_p=1.0, max_new_tokens=4,
                                seed=0)[0][0]) > 0


def test_close_ends_the_engine_and_returns_its_memory(engine, cuda: bool) -> None:
    backend, before = engine
    (pid,) = backend.pids
    held = rss(pid)
    open_ram, open_gpu = mem_available(), gpu_free(cuda)
    start = time.monotonic()
    backend.close()
    took = time.monotonic() - start
    after_ram, after_gpu = mem_available(), gpu_free(cuda)
    for _ in range(20):  # (the kernel frees a large exit in the background: up to ~5 s)
        if after_ram >= before["ram"] - 0.25 * held:
            break
        time.sleep(0.25)
        after_ram = max(after_ram, mem_available())
    mb = 1 << 20
    print(f"\nteardown in {took:.1f} s: engine private memory {held / mb:.0f} MB; RAM available "
          f"before start {before['ram'] / mb:.0f} MB, while open {open_ram / mb:.0f} MB, "
          f"after close {after_ram / mb:.0f} MB"
          + (f"; GPU free before {before['gpu'] / mb:.0f} MB, open {open_gpu / mb:.0f} MB, "
             f"after {after_gpu / mb:.0f} MB" if cuda else ""))
    assert gone(pid) and backend.pids == []
    assert held > 300 * mb  # it did hold the model (fp32 SmolLM2 alone is ~540 MB)
    # the RAM available is back to where it was before the engine started, give or take a
    # quarter of what the engine held (other processes on the machine move it a little)
    assert after_ram >= before["ram"] - 0.25 * held
    if cuda:
        assert after_gpu >= before["gpu"] - 512 * mb
    backend.close()  # a second close is harmless
    with pytest.raises(BackendError, match="closed"):
        backend.generate(CHATS[:1], n=1, temperature=0.0, top_p=1.0, max_new_tokens=4, seed=0)


def test_an_engine_killed_while_loading_is_one_line_not_a_hang(smollm2_dir: Path,
                                                               cuda: bool,
                                                               engine_memory: float) -> None:
    from cream_engine.backends.vllm import VLLMBackend

    me = os.getpid()
    killed: list[int] = []

    def kill_the_engine() -> None:  # a real fault: SIGKILL the engine process mid-start
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for entry in Path("/proc").iterdir():
                try:
                    cmd = (entry / "cmdline").read_bytes()
                    ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                except (OSError, ValueError):
                    continue
                if ppid == me and b"cream_engine.backends.vllm_engine" in cmd:
                    time.sleep(2.0)
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed.append(int(entry.name))
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_engine)
    killer.start()
    start = time.monotonic()
    with pytest.raises(BackendError) as info:
        VLLMBackend(str(smollm2_dir), dtype="float32", seed=0, cuda=cuda,
                    gpu_memory_utilization=engine_memory)
    took = time.monotonic() - start
    killer.join()
    message = str(info.value)
    print(f"\nkilled engine reported in {took:.1f} s: {message}")
    assert killed and gone(killed[0])
    assert "\n" not in message and "exited with code -9" in message
    assert took < 60
