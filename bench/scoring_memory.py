"""Peak memory of one scoring batch: full fp32 logits (the old way) vs the chunked LM head.

The score stage's log π(y|x) used to take `model(...).logits[:, :-1].float()`: B × L × V fp32
values (4.2 GB for 8 × 1024 tokens at Llama-3's 128,256-token vocabulary), and its logsumexp
another tensor of that size. `logprobs.encoded_logprobs` now runs the decoder body once and the
LM head on the scored positions only, in tiles of at most logprobs.CHUNK_BYTES fp32 logits.

A tiny Llama (hidden 64, 2 layers: its body costs next to nothing) with a vocabulary-sized head
shows the logits term alone. Each (way, batch) runs in a fresh process, so the peak is that
batch's: on the CPU the peak resident set (ru_maxrss) minus the resident set just before the
batch; on a GPU torch's peak allocated bytes minus those before. Every sequence is a quarter
prompt, three quarters response (the scored part). The two ways' sums are compared.

    .venv/bin/python bench/scoring_memory.py [--sizes 1x512,4x512,8x512,4x1024] [--vocab 128256]
        [--device cpu|cuda] [--dtype float32|bfloat16]

Not a timed test.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MIB = 2 ** 20


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def one(way: str, batch: int, length: int, args: argparse.Namespace) -> dict:
    """One batch scored one way, in this process: its peak memory and its sums."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from cream_engine import logprobs

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    config = LlamaConfig(vocab_size=args.vocab, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=max(length, 2048), tie_word_embeddings=True)
    model = LlamaForCausalLM(config).to(device=args.device, dtype=dtype).eval()
    tokenizer = type("Tok", (), {"pad_token_id": 0})()
    g = torch.Generator().manual_seed(batch * 100_003 + length)
    encoded = [(torch.randint(1, args.vocab, (length,), generator=g).tolist(), length // 4)
               for _ in range(batch)]
    run = {"old": lambda: logprobs.full_logits_logprobs(model, tokenizer, encoded,
                                                         batch_size=batch, device=args.device),
           "new": lambda: logprobs.encoded_logprobs(model, tokenizer, encoded,
                                                    batch_size=batch, device=args.device)}[way]
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = rss_bytes()
    started = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - started
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() - before
    else:  # ru_maxrss is in KiB on Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {"peak": max(peak, 0), "seconds": seconds, "sums": [s.logp for s in out]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1x512,4x512,8x512,4x1024",
                        help="batches as BATCHxLENGTH, comma-separated")
    parser.add_argument("--vocab", type=int, default=128256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", nargs=3, metavar=("WAY", "BATCH", "LENGTH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        way, b, n = args.one
        print(json.dumps(one(way, int(b), int(n), args)))
        return 0

    from cream_engine.logprobs import CHUNK_BYTES

    print(f"vocabulary {args.vocab}, {args.device}, {args.dtype}; chunked head tiles "
          f"<= {CHUNK_BYTES / MIB:.0f} MiB of fp32 logits")
    print(f"{'batch':>10} {'fp32 logits':>12} {'old peak':>10} {'new peak':>10} "
          f"{'old s':>7} {'new s':>7} {'max |diff|':>11}")
    for size in args.sizes.split(","):
        b, n = (int(x) for x in size.lower().split("x"))
        results = {}
        for way in ("old", "new"):
            cmd = [sys.executable, __file__, "--one", way, str(b), str(n),
                   "--vocab", str(args.vocab), "--device", args.device,
                   "--dtype", args.dtype, "--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{size}: {way} failed: {done.stderr.strip().splitlines()[-1:]}")
                return 1
            results[way] = json.loads(done.stdout.strip().splitlines()[-1])
        old, new = results["old"], results["new"]
        diff = max(abs(a - c) for a, c in zip(old["sums"], new["sums"]))
        logits = b * (n - 1) * args.vocab * 4
        print(f"{b:>4} x {n:<4} {logits / MIB:>8.0f} MiB {old['peak'] / MIB:>6.0f} MiB "
              f"{new['peak'] / MIB:>6.0f} MiB {old['seconds']:>7.2f} {new['seconds']:>7.2f} "
              f"{diff:>11.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
