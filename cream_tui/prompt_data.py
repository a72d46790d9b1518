"""The drill-down's reads of `cream_engine.prompt_view`, as the dashboard and `cream show` make
them: cached (the dashboard asks at every poll; an iteration's files are read again only when
one of them changed), and as JSON (`cream show --json`, the feed to a dashboard on another box)
with the way back to the frozen values."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cream_engine import prompt_view as pv
from cream_engine.errors import UsageError
from cream_engine.store import Store

_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_LOCK = threading.Lock()
CACHE_SIZE = 16


def _signature(run_dir: Path, t: int) -> tuple:
    out = []
    for stage in pv.READ_STAGES:
        path = pv.artifact(run_dir, t, stage)
        if path is not None:
            st = path.stat()
            out.append((path.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _cached(key: tuple, read: Any) -> Any:
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    value = read()
    with _LOCK:
        _CACHE[key] = value
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def iteration(run_dir: Path, t: int, run_name: str, method: str | None = None
              ) -> pv.IterationView:
    """Iteration t's prompts; `UsageError` (one line) when it has none of the files."""
    pv.check_iteration(run_dir, t, run_name)
    return _cached(("iteration", str(run_dir), t, method, _signature(run_dir, t)),
                   lambda: pv.read_iteration(run_dir, t, method))


def prompt(run_dir: Path, t: int, prompt_id: str, run_name: str, method: str | None = None
           ) -> pv.PromptDetail:
    """One prompt in full; `UsageError` when iteration t does not have it."""
    pv.check_iteration(run_dir, t, run_name)
    found = _cached(("prompt", str(run_dir), t, prompt_id, method, _signature(run_dir, t)),
                    lambda: pv.read_prompt(run_dir, t, prompt_id, method))
    if found is None:
        raise UsageError(f"run {run_name}: iteration {t} has no prompt {prompt_id!r} (list "
                         f"them with `cream show {run_name} --iteration {t}`)")
    return found


# -- JSON -------------------------------------------------------------------------------------


def to_json(value: pv.IterationView | pv.PromptDetail) -> dict:
    return asdict(value)


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _summary(d: dict) -> pv.PromptSummary:
    pair = d.get("pair")
    if pair is not None:
        pair = pv.PairInfo(**{**pair, "rewards": tuple(pair["rewards"])})
    return pv.PromptSummary(**{**d, "pair": pair})


def iteration_from_json(d: dict) -> pv.IterationView:
    summary = {k: _tuples(v) for k, v in d["summary"].items()}
    return pv.IterationView(pv.IterationSummary(**summary),
                            tuple(_summary(p) for p in d["prompts"]))


def detail_from_json(d: dict) -> pv.PromptDetail:
    responses = tuple(pv.ResponseDetail(**{k: _tuples(v) for k, v in r.items()})
                      for r in d["responses"])
    return pv.PromptDetail(**{**d, "summary": _summary(d["summary"]),
                              "messages": _tuples(d["messages"]), "responses": responses})


# -- a run's iteration, by reference ----------------------------------------------------------


def lookup(store: Store, ref: str, t: int, prompt_id: str | None = None
           ) -> tuple[str, tuple[int, ...], pv.IterationView | pv.PromptDetail]:
    """(run name, the iterations with files, iteration t's prompts or one prompt) of run
    `ref`; a `CreamError` with one line when the run, the iteration or the prompt is not
    there."""
    found = store.require_run(ref)
    run_dir = store.run_path(found)
    have = tuple(pv.iterations_with_files(run_dir))
    if prompt_id is None:
        return found["name"], have, iteration(run_dir, t, found["name"], found["method"])
    return found["name"], have, prompt(run_dir, t, prompt_id, found["name"], found["method"])


def answer(home: Path, run: str, t: int, prompt_id: str | None = None) -> dict:
    """The feed's reply to a dashboard on another box ({"name", "iterations", "data"}), on a
    store connection of its own (the feed's is its polling thread's)."""
    store = Store.open(home, create=False)
    if store is None:
        raise UsageError(f"no store in {home} yet: no runs")
    try:
        name, have, value = lookup(store, run, t, prompt_id)
    finally:
        store.close()
    return {"name": name, "iterations": list(have), "data": to_json(value)}
