"""One vLLM engine in a process of its own: `python -m cream_engine.backends.vllm_engine`.

The only module that imports vLLM; its objects and types never leave this process. The
backend (`backends/vllm.py`) starts it with the settings as JSON in argv[1] and the GPUs it may
use in CUDA_VISIBLE_DEVICES, then talks to it in JSON lines: requests on stdin, replies on
stdout (which is kept for them: whatever vLLM prints goes to stderr). Token ids travel both
ways, so the tokenizer and chat template are the backend's, identical to the hf backend's.

    -> {"op": "generate", "prompts": [[id, ...], ...], "n": 4, "temperature": 0.8,
        "top_p": 0.95, "top_k": 0, "max_tokens": 96, "seeds": [s0, s1, ...],
        "stop_token_ids": [2]}                 (top_k 0 = off, as vLLM reads it)
    <- {"ok": [[[id, ...] × n] per prompt]}
    -> {"op": "logprobs", "prompts": [[id, ...], ...], "token_ids": [33, 34, ...]}
    <- {"ok": [[log p(token | prompt) per token id] per prompt]}
    -> {"op": "close"}                      (or stdin closed: the same)
    <- {"error": "one line"}               for a request that failed; the engine goes on

It ends when asked, when stdin closes, or when its parent is gone (a watchdog thread), and
exits with the engine, so the memory vLLM reserved (GPU memory, or RAM on the CPU build) is
returned to the system when this process is.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time


def _reply(out, message: dict) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _watch_parent(parent: int) -> None:
    """A parent killed with SIGKILL cannot ask us to stop: exit as soon as it is gone."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(1.0)


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def serve(settings: dict, out, requests) -> None:
    import vllm  # (here: the stdout redirection below must come first)

    llm = vllm.LLM(model=settings["model"], tokenizer=settings["model"],
                   dtype=settings["dtype"], seed=settings["seed"],
                   tensor_parallel_size=settings["tensor_parallel_size"],
                   gpu_memory_utilization=settings["gpu_memory_utilization"],
                   max_model_len=settings["max_model_len"],
                   enforce_eager=settings["enforce_eager"],
                   trust_remote_code=settings["trust_remote_code"])
    _reply(out, {"ready": True, "pid": os.getpid(),
                 "max_model_len": llm.llm_engine.model_config.max_model_len})
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        if request["op"] == "close":
            break
        try:
            prompts = [{"prompt_token_ids": ids} for ids in request["prompts"]]
            if request["op"] == "generate":
                # one SamplingParams per prompt: its own seed, so a prompt's samples do not
                # depend on its batch or on which engine drew it. Explicit params take no
                # sampling defaults from the model's generation_config.json (only its eos ids)
                params = [vllm.SamplingParams(
                    n=request["n"], temperature=request["temperature"],
                    top_p=request["top_p"], top_k=request["top_k"],
                    max_tokens=request["max_tokens"], seed=seed,
                    stop_token_ids=request["stop_token_ids"], detokenize=False)
                    for seed in request["seeds"]]
                outputs = llm.generate(prompts, params, use_tqdm=False)
                result = [[list(c.token_ids) for c in o.outputs] for o in outputs]
            elif request["op"] == "logprobs":
                # `logprob_token_ids`: log-softmax over the whole vocabulary taken at exactly
                # these ids (raw logits, before sampling settings), not a top-k that may miss
                # them
                ids = request["token_ids"]
                params = vllm.SamplingParams(n=1, temperature=0.0, max_tokens=1,
                                             logprob_token_ids=ids, detokenize=False)
                outputs = llm.generate(prompts, params, use_tqdm=False)
                result = [[o.outputs[0].logprobs[0][t].logprob for t in ids] for o in outputs]
            else:
                raise ValueError(f"unknown op {request['op']!r}")
        except Exception as e:  # noqa: BLE001 (one request failed, a bad input: say so, go on)
            _reply(out, {"error": _one_line(e)})
            continue
        _reply(out, {"ok": result})
    # note: the engine core runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0), so
    # shutting it down and exiting returns everything; tensor-parallel workers watch a pipe
    # from this process and exit with it
    llm.llm_engine.engine_core.shutdown()


def main() -> None:
    settings = json.loads(sys.argv[1])
    out = os.fdopen(os.dup(1), "w")  # replies only: vLLM and its libraries print to stdout
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    threading.Thread(target=_watch_parent, args=(settings["parent"],), daemon=True).start()
    try:
        serve(settings, out, sys.stdin)
    except Exception as e:  # noqa: BLE001 (a failed start: the backend shows this line)
        import traceback

        traceback.print_exc()
        _reply(out, {"error": _one_line(e)})
        sys.stderr.flush()
        os._exit(1)
    sys.stderr.flush()
    os._exit(0)  # not the interpreter's slow teardown of vLLM's threads


if __name__ == "__main__":
    main()
