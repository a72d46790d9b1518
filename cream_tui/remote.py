"""The dashboard over several boxes: `MultiSource` answers the screens as `DataSource` does,
from this box's own data home (host `local`, when it is one of them) and from each other
box's feed (`cream_engine.hosts.HostLink`, one `ssh HOST cream feed` kept open).

A run is called `host::id` here (`data.run_key`); every action goes to the box the run lives
on. Rows of a remote run are aged between updates (its elapsed time grows, its ETA shrinks),
because the feed sends a row again only when something else changed. A host that is down
keeps its last rows, marked so in the host column; its GPUs say why they are missing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cream_engine.errors import CreamError, UsageError
from cream_engine.hosts import LOCAL, HostLink
from cream_engine.results import IterationRow, RunSummary, StageRow
from cream_tui import actions, prompt_data
from cream_tui.data import (
    CompareData,
    DataSource,
    HomeData,
    HostView,
    PromptData,
    PromptsData,
    RunData,
    compare_from_parts,
    display_order,
    split_key,
)
from cream_tui.gpu_history import GpuRow, GpuState, ProcRow

PARTS_TTL_S = 5.0   # a remote run's compare parts are asked again at most this often
PROMPTS_TTL_S = 2.0  # and its drill-down (an iteration running grows its files)


def _tuples(value: Any) -> Any:
    """JSON lists back into the tuples the screens' values hold."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def summary_of(row: dict, host: str, age: float) -> RunSummary:
    """A run row from a feed, aged by `age` seconds when it is running."""
    fields = {k: v for k, v in row.items() if k in RunSummary.__dataclass_fields__}
    fields["gpu_uuids"] = tuple(fields.get("gpu_uuids") or ())
    summary = RunSummary(**{**fields, "host": host})
    if summary.status == "running" and age > 0:
        summary = replace(summary, elapsed=None if summary.elapsed is None
                          else summary.elapsed + age,
                          eta=None if summary.eta is None else max(summary.eta - age, 0.0))
    return summary


def run_data_of(fields: dict, host: str) -> RunData:
    """The run screen's value from the fields a feed sent for the watched run."""
    run = fields.get("run")
    return RunData(
        problem=fields.get("problem"),
        run=None if run is None else summary_of(run, host, 0.0),
        iterations=tuple(IterationRow(**{**i, "evaluation": _tuples(i["evaluation"])})
                         for i in fields.get("iterations") or ()),
        stage_iteration=fields.get("stage_iteration"),
        stages=tuple(StageRow(**s) for s in fields.get("stages") or ()),
        loss=_tuples(fields.get("loss") or []), loss_label=fields.get("loss_label", "loss"),
        margins=_tuples(fields.get("margins") or []),
        accuracy=_tuples(fields.get("accuracy") or []),
        boundaries=_tuples(fields.get("boundaries") or []),
        last=_tuples(fields.get("last")), log_path=fields.get("log_path", ""),
        log_lines=_tuples(fields.get("log_lines") or []))


def gpu_state_of(link: HostLink, state: str) -> GpuState:
    """A host's GPUs as the strip and the GPU screen show them, from its feed."""
    with link.lock:
        meta, now = link.gpu_meta, dict(link.gpu_now)
        history = {i: (tuple(u), tuple(m)) for i, (u, m) in link.gpu_history.items()}
    if state not in ("up", "slow"):
        return GpuState(reason=f"{link.spec.name} is {state}: {link.status()[1]}")
    rows = []
    for g in meta["gpus"]:
        util, used, temp, power = (now.get(g["index"]) or [None] * 4)[:4]
        total = g.get("memory_total_mb")
        utils, mems = history.get(g["index"], ((), ()))
        rows.append(GpuRow(
            index=g["index"], uuid=g["uuid"], name=g["name"], utilization=util,
            memory_used_mb=used, memory_total_mb=total, temperature_c=temp, power_w=power,
            age_s=None, util_history=utils,
            mem_history=tuple(None if m is None or not total else 100 * m / total
                              for m in mems),
            processes=tuple(ProcRow(*p) for p in g.get("processes", ()))))
    return GpuState(tuple(rows), meta.get("reason", "") if not rows else "")


class MultiSource:
    """Reads several boxes for the screens: the local data home and each host's feed."""

    def __init__(self, local: DataSource | None, links: Sequence[HostLink]):
        self.local = local
        self.links = {link.spec.name: link for link in links}
        self.names = ([LOCAL] if local is not None else []) + list(self.links)
        self._parts: dict[str, tuple[float, dict]] = {}
        self._prompts: dict[tuple, tuple[float, dict]] = {}

    def start(self) -> MultiSource:
        for link in self.links.values():
            link.start()
        return self

    def reset(self) -> None:
        if self.local is not None:
            self.local.reset()

    def close(self) -> None:
        if self.local is not None:
            self.local.close()
        for link in self.links.values():
            link.close()

    # -- home ----------------------------------------------------------------------------

    def home_data(self, now: float) -> HomeData:
        rows: list[RunSummary] = []
        views: list[HostView] = []
        if self.local is not None:
            data = self.local.home_data(now)
            rows += [replace(r, host=LOCAL) for r in data.runs]
            line = f"this box: {self.local.home}" if data.runs or not data.problem else \
                data.problem.splitlines()[0]
            views.append(HostView(LOCAL, "local", line, data.gpus, data.drained,
                                  len(data.runs)))
        mono = time.monotonic()
        for name, link in self.links.items():
            link.watch(None)  # (no run screen in front: stop its stream)
            state, line = link.status()
            with link.lock:
                remote = [summary_of(r, name, mono - link.received_at.get(r["id"], mono))
                          for r in link.runs.values()]
                drained = link.drained
            rows += remote
            views.append(HostView(name, state, line, gpu_state_of(link, state), drained,
                                  len(remote)))
        settled = all(v.state in ("local", "up") for v in views)
        problem = None if rows or not settled else (
            "No runs on " + ", ".join(self.names) + " yet.\n\nPress s to submit a config "
            "to a host (host:path), ? for help, q to quit.")
        return HomeData(problem, tuple(display_order(rows)), False, GpuState(), tuple(views))

    def gpu_data(self, now: float) -> GpuState:
        """Every host's GPUs in one list, each named with its host."""
        rows: list[GpuRow] = []
        reasons = []
        for view in self.home_data(now).hosts:
            rows += [replace(g, name=f"{view.name} · {g.name}") for g in view.gpus.gpus]
            if not view.gpus.gpus:
                reasons.append(f"{view.name}: {view.gpus.reason}")
        return GpuState(tuple(rows), "" if rows else "; ".join(reasons))

    # -- one run, several runs, actions ----------------------------------------------------

    def _link(self, host: str | None) -> HostLink | None:
        """The link of a remote host; None for this box; unknown names refused."""
        if host in (None, LOCAL):
            if self.local is None:
                raise UsageError("this dashboard does not show the local data home")
            return None
        link = self.links.get(host)
        if link is None:
            raise UsageError(f"no host {host!r} in this dashboard (hosts: "
                             f"{', '.join(self.names)})")
        return link

    def run_data(self, key: str, now: float, buckets: int) -> RunData:
        host, ref = split_key(key)
        link = self._link(host)
        if link is None:
            assert self.local is not None
            data = self.local.run_data(ref, now, buckets)
            return data if data.run is None else replace(data, run=replace(data.run,
                                                                           host=LOCAL))
        link.watch(ref, buckets)
        state, line = link.status()
        with link.lock:
            fields = dict(link.watched.get(ref) or {})
        if not fields:
            return RunData(f"{host} is {state}: {line}" if state not in ("up", "slow")
                           else f"reading run {ref} from {host}…")
        return run_data_of(fields, str(host))

    def compare_data(self, keys: tuple[str, ...]) -> CompareData:
        parts = []
        try:
            for key in keys:
                parts.append(self._part(key))
        except CreamError as e:
            return CompareData(e.line)
        return compare_from_parts(parts)

    def _part(self, key: str) -> dict:
        host, ref = split_key(key)
        cached = self._parts.get(key)
        if cached is not None and time.monotonic() - cached[0] < PARTS_TTL_S:
            return cached[1]
        link = self._link(host)
        if link is None:
            assert self.local is not None
            part = actions.compare_parts(self.local.home, [ref])[0]
        else:
            reply = link.request("compare", runs=[ref], timeout=30)
            if not reply.get("ok"):
                raise CreamError(f"{host}: {reply.get('line')}")
            part = reply["runs"][0]
        if host and len(self.names) > 1:  # (the same name on two boxes: say which)
            part = {**part, "name": f"{part['name']}@{host}"}
        self._parts[key] = (time.monotonic(), part)
        return part

    def act(self, host: str | None, name: str, *args: object) -> str:
        link = self._link(host)
        if link is None:
            assert self.local is not None
            return f"{LOCAL}: {self.local.act(None, name, *args)}"
        reply = link.request("act", name=name, args=list(args))
        if not reply.get("ok"):
            raise CreamError(f"{host}: {reply.get('line')}")
        return f"{host}: {reply.get('line')}"

    # -- drill-down ------------------------------------------------------------------------

    def prompts_data(self, key: str, iteration: int) -> PromptsData:
        host, ref = split_key(key)
        try:
            link = self._link(host)
            if link is None:
                assert self.local is not None
                return self.local.prompts_data(ref, iteration)
            reply = self._ask_prompts(link, key, ref, iteration, None)
        except CreamError as e:
            return PromptsData(e.line, iteration=iteration)
        return PromptsData(None, reply["name"], iteration, tuple(reply["iterations"]),
                           prompt_data.iteration_from_json(reply["data"]))

    def prompt_detail(self, key: str, iteration: int, prompt_id: str) -> PromptData:
        host, ref = split_key(key)
        try:
            link = self._link(host)
            if link is None:
                assert self.local is not None
                return self.local.prompt_detail(ref, iteration, prompt_id)
            reply = self._ask_prompts(link, key, ref, iteration, prompt_id)
        except CreamError as e:
            return PromptData(e.line)
        return PromptData(None, reply["name"], prompt_data.detail_from_json(reply["data"]))

    def _ask_prompts(self, link: HostLink, key: str, ref: str, iteration: int,
                     prompt_id: str | None) -> dict:
        """The far feed's "prompts" reply, asked again at most every PROMPTS_TTL_S (the
        screen polls every second)."""
        memo = (key, iteration, prompt_id)
        cached = self._prompts.get(memo)
        if cached is not None and time.monotonic() - cached[0] < PROMPTS_TTL_S:
            return cached[1]
        reply = link.request("prompts", run=ref, iteration=iteration, prompt=prompt_id,
                             timeout=30)
        if not reply.get("ok"):
            raise CreamError(f"{link.spec.name}: {reply.get('line')}")
        self._prompts[memo] = (time.monotonic(), reply)
        return reply
