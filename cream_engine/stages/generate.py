"""Stage 1, generate: N samples per prompt from M_t with the chat template, batched.

Writes `responses.jsonl`: prompt_id, prompt, messages, responses[N].
"""

from __future__ import annotations

from typing import Any

from cream_engine.backends import choose_backend, open_backend
from cream_engine.files import write_jsonl


def open_policy_backend(ctx: Any, k: int) -> Any:
    """The generation backend on M_k, shared with the next stage on the same model."""
    return ctx.backend(ctx.model_path(k), ctx.seed(k - ctx.offset, "generate"))


def open_backend_on(ctx: Any, path: str, seed: int) -> Any:
    """A new generation backend on a model folder (`auto`: vLLM with a GPU when installed,
    else hf, which uses the context's loaded copy of the model)."""
    cfg = ctx.config.generate
    kind = choose_backend(cfg.backend, ctx.device == "cuda")
    if kind == "vllm":
        ctx.release()  # the engine processes need the memory the loaded models hold
        return open_backend("vllm", model_path=path, device=ctx.device, dtype=ctx.dtype,
                            seed=seed, tensor_parallel_size=cfg.tensor_parallel_size,
                            gpu_memory_utilization=cfg.gpu_memory_utilization,
                            trust_remote_code=ctx.config.run.trust_remote_code)
    model, tokenizer = ctx.load(path)
    return open_backend("hf", model_path=path, model=model, tokenizer=tokenizer,
                        device=ctx.device, batch_size=cfg.batch_size)


def run(ctx: Any, t: int) -> dict:
    cfg = ctx.config.generate
    prompts = ctx.prompts(t)
    backend = open_policy_backend(ctx, ctx.policy(t))
    with ctx.progress(t, "generate", len(prompts), "generate") as bar:
        outputs = backend.generate([list(p.messages) for p in prompts], n=cfg.n,
                                   temperature=cfg.temperature, top_p=cfg.top_p,
                                   top_k=cfg.top_k, max_new_tokens=cfg.max_new_tokens,
                                   seed=ctx.seed(t, "generate"), progress=bar.advance)
    rows = [{**p.to_json(), "responses": responses} for p, responses in zip(prompts, outputs)]
    write_jsonl(ctx.artifact(t, "generate"), rows)
    empty = sum(1 for r in rows for x in r["responses"] if not x)
    return {"prompts": len(rows), "responses": sum(len(r["responses"]) for r in rows),
            "empty_responses": empty, "backend": backend.name}
