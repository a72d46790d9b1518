"""The vllm backend: vLLM engines in processes of their own, driven over pipes.

vLLM is never imported here. Each engine is a child process (`backends/vllm_engine.py`) holding
one `vllm.LLM`; `close()` asks it to stop and waits until it is gone, so the memory it reserved
(most of a GPU, or a fraction of RAM on the CPU build) is back before training loads a model.

Data parallel: with G GPUs in the job (CUDA_VISIBLE_DEVICES) and `tensor_parallel_size` T, G // T
engines run side by side, each on its own T GPUs; prompts are cut into chunks dealt out to them
and the results put back in input order. On the CPU build, one engine.

Prompts are rendered with the chat template and tokenized here, by the same tokenizer as the hf
backend, and sent as token ids; replies come back as token ids and are decoded here: both
backends see and write the same text. A dead engine is one `BackendError` line (the exit code
and its last error line; its log is in ours), never a hang.
"""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from cream_engine.backends.base import ChatRendering, Progress
from cream_engine.errors import BackendError
from cream_engine.vllmcheck import vllm_usable

CHUNK = 256               # prompts per request to one engine (progress is reported per chunk)
MAX_MODEL_LEN = 16384     # the context vLLM plans its cache for, at most: a model's own (often
                          # 128k) would reserve memory for sequences no stage writes
START_TIMEOUT = float(os.environ.get("CREAM_VLLM_START_TIMEOUT", "1800"))  # load (+ compile)
REQUEST_TIMEOUT = float(os.environ.get("CREAM_VLLM_TIMEOUT", "3600"))      # one chunk
CLOSE_TIMEOUT = 60.0
ROOT = str(Path(__file__).resolve().parents[2])  # where `cream_engine` is importable from


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a process, from /proc; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            fields = f.read().rpartition(")")[2].split()
        return int(fields[1]), fields[19]
    except (OSError, ValueError, IndexError):
        return None


def _descendants(pid: int) -> list[tuple[int, str]]:
    """The processes below `pid` (tensor-parallel workers) with their start times, from /proc
    ([] without it)."""
    children: dict[int, list[tuple[int, str]]] = collections.defaultdict(list)
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit() and (stat := _stat(int(entry))):
            children[stat[0]].append((int(entry), stat[1]))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def _kill(processes: list[tuple[int, str | None]]) -> None:
    """SIGKILL each (pid, start time) still alive; a pid reused since (another start time)
    is left alone."""
    for pid, started in processes:
        stat = _stat(pid)
        if stat and (started is None or stat[1] == started):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class RequestFailed(BackendError):
    """The engine refused one request (it said why) and serves on."""


class _Engine:
    """One engine process: JSON lines in on stdin, out on stdout; stderr passed on to ours
    (its last lines kept to name a failure)."""

    def __init__(self, settings: dict, env: dict):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cream_engine.backends.vllm_engine", json.dumps(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            cwd=ROOT)  # note: same process group: a cancelled job's group kill reaches it too
        self.pid = self.proc.pid
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self._below: list[tuple[int, str]] = []
        self._buffer = b""
        self._forward = threading.Thread(target=self._pass_stderr, daemon=True)
        self._forward.start()

    def _pass_stderr(self) -> None:
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.tail.append(line.rstrip())
            sys.stderr.write(line)
        sys.stderr.flush()

    def send(self, message: dict) -> None:
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise BackendError(self._death("taking a request")) from None

    def receive(self, timeout: float, doing: str) -> Any:
        """The next reply's result; BackendError if the engine reports an error, dies or
        says nothing for `timeout` seconds."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            if time.monotonic() > deadline:
                raise BackendError(f"the vLLM engine (pid {self.pid}) gave no answer in "
                                   f"{timeout:.0f} s while {doing} (CREAM_VLLM_TIMEOUT, "
                                   f"CREAM_VLLM_START_TIMEOUT)")
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready:
                data = os.read(fd, 1 << 20)
                if not data:
                    raise BackendError(self._death(doing))
                self._buffer += data
            elif self.proc.poll() is not None:
                raise BackendError(self._death(doing))
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply = json.loads(line)
        if "error" in reply:
            raise RequestFailed(f"vLLM engine, {doing}: {reply['error']}")
        return reply

    def _death(self, doing: str) -> str:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        self._forward.join(timeout=5)
        errors = [t for t in self.tail if "Error" in t or "error" in t] or list(self.tail)
        why = f": {errors[-1].strip()[:300]}" if errors else ""
        how = f"exited with code {code}" if code is not None else "closed its pipe"
        return f"the vLLM engine process (pid {self.pid}) {how} while {doing}{why}"

    def ask_to_stop(self) -> None:
        """Ask it to end (a closed stdin says the same), noting what it started first."""
        self._below = _descendants(self.pid) if self.proc.poll() is None else []
        try:
            self.send({"op": "close"})
        except BackendError:
            pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def wait_gone(self) -> None:
        """Wait for it to end; after CLOSE_TIMEOUT, kill it. Then what it started (tensor-
        parallel workers leave with it: this makes sure) and our pipes."""
        try:
            self.proc.wait(timeout=CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill([(self.pid, None)])
            self.proc.wait()
        _kill(self._below)
        self._forward.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


def _engine_env(devices: list[str] | None) -> dict:
    env = {**os.environ,
           "VLLM_HOST_IP": "127.0.0.1",             # its local sockets stay on loopback
           "VLLM_ENABLE_V1_MULTIPROCESSING": "0",   # the engine core in the engine process:
                                                    # ending it ends everything
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
           "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    if devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    return env


def _job_gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _context(model_path: str) -> int | None:
    try:
        config = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("max_position_embeddings")
    return value if isinstance(value, int) and value > 0 else None


class VLLMBackend(ChatRendering):
    name = "vllm"

    def __init__(self, model_path: str, *, dtype: str, seed: int, cuda: bool | None = None,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85,
                 trust_remote_code: bool = False):
        if cuda is None:
            import torch

            cuda = torch.cuda.is_available()
        why_not = vllm_usable(cuda)
        if why_not:
            raise BackendError(why_not)
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path,
                                                       trust_remote_code=trust_remote_code)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        context = _context(model_path)
        self.max_model_len = min(context, MAX_MODEL_LEN) if context else MAX_MODEL_LEN
        size = tensor_parallel_size
        if cuda:
            gpus = _job_gpus()
            if size > len(gpus):
                raise BackendError(f"[generate] tensor_parallel_size = {size} exceeds the "
                                   f"job's {len(gpus)} GPU(s)")
            groups: list[list[str] | None] = [gpus[i * size:(i + 1) * size]
                                              for i in range(len(gpus) // size)]
        else:
            groups = [None]  # the CPU build: one engine
        settings = {"model": model_path, "dtype": dtype, "seed": seed,
                    "tensor_parallel_size": size,
                    "gpu_memory_utilization": gpu_memory_utilization,
                    "max_model_len": self.max_model_len,
                    # note: on CPU vLLM would first compile the model with inductor (over
                    # 10 minutes on 2 cores); eager is what the CPU build runs fast enough
                    "enforce_eager": not cuda, "trust_remote_code": trust_remote_code,
                    "parent": os.getpid()}
        self.engines: list[_Engine] = []
        self._finalizer = weakref.finalize(self, _stop_all, self.engines)
        try:
            for devices in groups:
                self.engines.append(_Engine(settings, _engine_env(devices)))
            for engine in self.engines:
                ready = engine.receive(START_TIMEOUT, f"loading {model_path}")
                self.max_model_len = ready["max_model_len"]
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        """The engine processes (tests watch them end)."""
        return [e.pid for e in self.engines]

    # -- requests -------------------------------------------------------------------------

    def _encode(self, texts: list[str], new_tokens: int) -> list[list[int]]:
        # the chat template already wrote any BOS, so no special tokens are added (as hf)
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        longest = max((len(x) for x in ids), default=0)
        if longest + new_tokens > self.max_model_len:
            raise BackendError(f"an input of {longest} tokens (+ {new_tokens} to generate) "
                               f"exceeds the vLLM engine's context of {self.max_model_len} "
                               f"tokens")
        return ids

    def _run(self, op: str, prompts: list[list[int]], fields: dict, per_prompt: dict,
             doing: str, progress: Progress | None) -> list:
        """Chunks of `prompts` dealt out to the engines, one round at a time; the results in
        input order. `per_prompt`: lists cut along with the prompts."""
        if not self.engines:
            raise BackendError("the vLLM backend is closed (its engines have ended)")
        chunks = [range(s, min(s + CHUNK, len(prompts))) for s in range(0, len(prompts), CHUNK)]
        results: list = []
        try:
            for start in range(0, len(chunks), len(self.engines)):
                round_ = list(zip(self.engines, chunks[start:start + len(self.engines)]))
                for engine, chunk in round_:
                    engine.send({"op": op, "prompts": [prompts[i] for i in chunk], **fields,
                                 **{k: [v[i] for i in chunk] for k, v in per_prompt.items()}})
                refused: list[RequestFailed] = []
                for engine, chunk in round_:  # every reply read, so none is left for later
                    try:
                        results.extend(engine.receive(REQUEST_TIMEOUT, doing)["ok"])
                    except RequestFailed as e:
                        refused.append(e)
                    if progress:
                        progress(len(chunk))
                if refused:
                    raise refused[0]
        except RequestFailed:
            raise
        except BackendError:  # an engine died or went silent: the others are of no use now
            self.close()
            raise
        return results

    def generate(self, conversations: list[list[dict]], *, n: int, temperature: float,
                 top_p: float, max_new_tokens: int, seed: int, top_k: int = 0,
                 progress: Progress | None = None) -> list[list[str]]:
        prompts = self._encode([self.render(c) for c in conversations], max_new_tokens)
        sample = temperature > 0
        fields = {"n": n if sample else 1, "temperature": temperature if sample else 0.0,
                  "top_p": top_p if sample else 1.0, "top_k": top_k if sample else 0,
                  "max_tokens": max_new_tokens,
                  "stop_token_ids": [self.tokenizer.eos_token_id]}
        # each prompt's own seed (as hf seeds each batch): the same samples however the
        # prompts are cut among engines
        seeds = [seed * 1_000_003 + i for i in range(len(prompts))]
        outs = self._run("generate", prompts, fields, {"seeds": seeds},
                         f"generating for {len(prompts)} prompts", progress)
        result = []
        for samples in outs:
            texts = [t.strip() for t in
                     self.tokenizer.batch_decode(samples, skip_special_tokens=True)]
            result.append(texts if sample else texts * n)
        return result

    def next_token_logprobs(self, texts: list[str], token_ids: list[int],
                            progress: Progress | None = None) -> list[list[float]]:
        prompts = self._encode(texts, 1)
        return self._run("logprobs", prompts, {"token_ids": list(token_ids)}, {},
                         f"scoring {len(prompts)} texts", progress)

    def close(self) -> None:
        """End every engine process and wait until it is gone (its memory is free then)."""
        self._finalizer()


def _stop_all(engines: list[_Engine]) -> None:
    for engine in engines:  # all asked first: they shut down side by side
        engine.ask_to_stop()
    while engines:
        engines.pop().wait_gone()
