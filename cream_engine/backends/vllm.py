"""vLLM offline generation. vLLM is imported only here, and its types never leave this file.

Settings are always explicit: one `SamplingParams` per call with `n` and `max_tokens` set
(vLLM's `max_tokens` defaults to 16). Prompts are rendered with the model's chat template by
its tokenizer, so both backends see the same text.
"""

from __future__ import annotations

from typing import Any

try:
    import vllm
except ImportError:  # optional (`cream[vllm]`): the backend says what to install
    vllm = None

from cream_engine.backends.base import ChatRendering, Progress
from cream_engine.errors import BackendError

TOP_LOGPROBS = 20  # vLLM returns the top-k; a digit outside them counts as -inf


class VLLMBackend(ChatRendering):
    name = "vllm"

    def __init__(self, model_path: str, *, dtype: str, seed: int,
                 gpu_memory_utilization: float = 0.85):
        if vllm is None:
            raise BackendError("the vllm backend needs vLLM: pip install 'cream[vllm]'")
        self.llm = vllm.LLM(model=model_path, dtype={"float32": "float32"}.get(dtype, "auto"),
                            seed=seed, gpu_memory_utilization=gpu_memory_utilization)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, conversations: list[list[dict]], *, n: int, temperature: float,
                 top_p: float, max_new_tokens: int, seed: int,
                 progress: Progress | None = None) -> list[list[str]]:
        params = vllm.SamplingParams(
            n=n if temperature > 0 else 1, temperature=temperature,
            top_p=top_p if temperature > 0 else 1.0, max_tokens=max_new_tokens, seed=seed)
        outputs = self.llm.generate([self.render(c) for c in conversations], params,
                                    use_tqdm=False)
        if progress:
            progress(len(conversations))
        result = []
        for o in outputs:  # vLLM returns results in prompt order
            texts = [c.text.strip() for c in o.outputs]
            result.append(texts if len(texts) == n else texts * n)
        return result

    def next_token_logprobs(self, texts: list[str], token_ids: list[int],
                            progress: Progress | None = None) -> list[list[float]]:
        params = vllm.SamplingParams(n=1, temperature=0.0, max_tokens=1,
                                           logprobs=TOP_LOGPROBS)
        outputs = self.llm.generate(texts, params, use_tqdm=False)
        if progress:
            progress(len(texts))
        rows = []
        for o in outputs:
            top: dict[int, Any] = o.outputs[0].logprobs[0]
            rows.append([top[t].logprob if t in top else float("-inf") for t in token_ids])
        return rows

    def close(self) -> None:
        del self.llm
