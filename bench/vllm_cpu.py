"""vLLM (its CPU build, or a GPU build on a GPU) against transformers on the same model: engine
start, greedy and sampled tokens/s, the judge's next-token log-probs, and the teardown.

    .venv-vllm/bin/python bench/vllm_cpu.py [--prompts 16] [--tokens 64] [--n 4]
        [--memory 0.1] [--model SPEC] [--home DIR] [--bind]

Run it from .venv-vllm (`make setup-vllm`). On a small shared CPU machine vLLM's OpenMP threads
are left unbound with one thread (as the tests do) unless --bind is given.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=64, help="max_new_tokens")
    ap.add_argument("--n", type=int, default=4, help="samples per prompt when sampling")
    ap.add_argument("--memory", type=float, default=0.1,
                    help="gpu_memory_utilization (on the CPU build: the fraction of RAM)")
    ap.add_argument("--model", default="bundled:smollm2-135m-instruct")
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--bind", action="store_true", help="keep vLLM's OpenMP thread binding")
    args = ap.parse_args()
    if not args.bind:
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch

    from cream_engine.backends.hf import HFBackend
    from cream_engine.backends.vllm import VLLMBackend
    from cream_engine.models import load_model, resolve_model

    cuda = torch.cuda.is_available()
    home = args.home or Path(tempfile.mkdtemp(prefix="vllm-bench-"))
    path = resolve_model(args.model, home)
    dtype = "bfloat16" if cuda else "float32"
    chats = [[{"role": "user", "content": f"Tell me one thing about the number {i}."}]
             for i in range(args.prompts)]
    rows: list[tuple[str, str, str]] = []
    mb = 1 << 20

    before = mem_available()
    vllm, took = timed(lambda: VLLMBackend(path, dtype=dtype, seed=0, cuda=cuda,
                                           gpu_memory_utilization=args.memory))
    rows.append(("vllm engine start", f"{took:.1f} s", f"RSS {rss(vllm.pids[0]) / mb:.0f} MB"))
    model, tok = load_model(path, home, dtype=dtype, device="cuda" if cuda else "cpu")
    hf = HFBackend(model, tok, device="cuda" if cuda else "cpu", batch_size=args.prompts)

    def count(outs: list[list[str]]) -> int:
        return sum(len(tok(x, add_special_tokens=False)["input_ids"]) for o in outs for x in o)

    vllm.generate(chats[:2], n=1, temperature=0.0, top_p=1.0, max_new_tokens=4, seed=0)
    for what, kw in (("greedy", {"n": 1, "temperature": 0.0, "top_p": 1.0}),
                     (f"sampled n={args.n}", {"n": args.n, "temperature": 0.8, "top_p": 0.95})):
        for name, backend in (("vllm", vllm), ("hf", hf)):
            outs, took = timed(lambda b=backend, k=kw: b.generate(
                chats, max_new_tokens=args.tokens, seed=1, **k))
            if kw["temperature"] == 0:
                outs = [o[:1] for o in outs]
            rows.append((f"{name} {what}", f"{took:.1f} s",
                         f"{count(outs) / took:.0f} tok/s ({count(outs)} tokens)"))
    texts = [vllm.render(c) + "Score: " for c in chats] * 4
    ids = [tok.convert_tokens_to_ids(str(d)) for d in range(6)]
    ours, took_v = timed(lambda: vllm.next_token_logprobs(texts, ids))
    theirs, took_h = timed(lambda: hf.next_token_logprobs(texts, ids))
    worst = max(abs(a - b) for r, s in zip(ours, theirs) for a, b in zip(r, s))
    rows.append((f"judge log-probs x{len(texts)}", f"vllm {took_v:.1f} s, hf {took_h:.1f} s",
                 f"max |diff| {worst:.5f} nats"))
    open_ram = mem_available()
    _, took = timed(vllm.close)
    ram = (f"RAM available {before / mb:.0f} -> {open_ram / mb:.0f} (open, hf loaded too) -> "
           f"{mem_available() / mb:.0f} MB")
    rows.append(("vllm close", f"{took:.1f} s", ram))

    print(f"\n{path} ({dtype}, {'GPU' if cuda else 'CPU'}), {args.prompts} prompts, "
          f"{args.tokens} new tokens")
    width = max(len(r[0]) for r in rows)
    for row in rows:
        print(f"{row[0]:<{width}}  {row[1]:<24} {row[2]}")
    return 0


if __name__ == "__main__":  # (vLLM's engine processes start from a spawned interpreter)
    raise SystemExit(main())
