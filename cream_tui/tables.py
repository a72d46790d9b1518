"""Results printed for the shell (rich tables on stdout); every command that prints one also
has `--json`. Numbers that are missing print as "-", GPU readings as "N/A"."""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cream_engine.compare import labels
from cream_engine.results import RunSummary
from cream_tui import format as fmt

MAX_LABEL = 16   # longer run names become letters in the compare tables


def _table(title: str | None = None) -> Table:
    return Table(box=None, header_style="bold", title=title, title_justify="left",
                 title_style="bold")


def print_runs(rows: list[RunSummary], console: Console | None = None) -> None:
    """`cream status`: one line per run, its name whole at any width (piped too: 80
    columns); the other columns are cut or left out first."""
    stages = []
    for r in rows:
        stage = "-"
        if r.stage and r.stage_status == "running":
            stage = r.stage + (f" {r.stage_done}/{r.stage_total}" if r.stage_total else "")
        stages.append(stage)
    print_fitted(console or Console(), [
        Col("name", [r.name for r in rows], fold=True),
        Col("id", [r.id for r in rows], least=ID_LEAST),
        Col("method", [r.method for r in rows]),
        Col("status", [r.status for r in rows]),
        Col("iter", [f"{r.iteration}/{r.iterations}" for r in rows]),
        Col("stage", stages, least=8),
        Col("created", [fmt.clock(r.created_at) for r in rows])],
        steps=(("drop", "created"), ("cut", "id"), ("cut", "stage"), ("drop", "method"),
               ("drop", "id"), ("drop", "stage"), ("drop", "iter")))


def print_run(d: dict, console: Console | None = None) -> None:
    """One run: the summary line, its error, the iterations and the latest metrics."""
    console = console or Console()
    console.print(f"[bold]{d['id']}[/]  {d['method']} on {d['model']}  status {d['status']}  "
                  f"iteration {d['iteration']}/{d['iterations']}")
    if d.get("executor") == "slurm":  # (the newest job is the one on Slurm)
        job = d["jobs"][-1]
        console.print(f"slurm job {job['slurm_id']}: {job_status(job)}  {job_where(job)}")
    if d["error"]:
        console.print(Text.assemble(("error:", "red"), f" {d['error']}"))
    table = _table("iterations")
    for col in ("t", "status", "pairs", "mean τ", "mean C", "agreement", "resp len"):
        table.add_column(col)
    for it in d["iterations_detail"]:
        table.add_row(str(it["iteration"]), it["status"], fmt.num(it["n_pairs"], "{}"),
                      fmt.num(it["mean_tau"]), fmt.num(it["mean_consistency"]),
                      fmt.num(it["agreement"]), fmt.num(it["mean_response_length"], "{:.1f}"))
    console.print(table)
    if d["latest_metrics"]:
        console.print("latest: " + "  ".join(f"{k}={v:.4g}" for k, v in
                                             sorted(d["latest_metrics"].items())
                                             if v is not None))


def print_jobs(rows: list[dict], console: Console | None = None) -> None:
    """`cream queue ls`: a local job's GPUs and pid; a Slurm job's id, why it is pending, its
    node and elapsed time once it runs ("unknown (slurmctld unreachable)" when Slurm cannot be
    asked). The run's name stays whole at any width, as in `print_runs`."""
    print_fitted(console or Console(), [
        Col("job", [str(j["id"]) for j in rows]),
        Col("name", [j.get("name") or "-" for j in rows], fold=True),
        Col("id", [j["run_id"] for j in rows], least=ID_LEAST),
        Col("method", [j["method"] for j in rows]),
        Col("status", [job_status(j) for j in rows]),
        Col("prio", [str(j["priority"]) for j in rows]),
        Col("gpus", ["auto" if j["gpus"] is None else str(j["gpus"]) for j in rows]),
        Col("where", [job_where(j) for j in rows], least=12),
        Col("started", [fmt.clock(j["started_at"]) for j in rows])],
        steps=(("drop", "started"), ("cut", "where"), ("cut", "id"), ("drop", "method"),
               ("drop", "id"), ("drop", "prio"), ("drop", "gpus"), ("drop", "job"),
               ("drop", "where")))


def job_status(j: dict) -> str:
    if j.get("executor") == "slurm" and j.get("slurm_state") == "UNKNOWN":
        return f"unknown ({j.get('slurm_reason') or '?'})"
    return j["status"]


def job_where(j: dict) -> str:
    """pid 123 (local), or slurm 42 pending: Priority / slurm 42 node1 3m12s."""
    if j.get("executor") != "slurm":
        return f"pid {j['pid']}" if j.get("pid") else "-"
    text = f"slurm {j['slurm_id']}"
    if j.get("slurm_state") == "UNKNOWN":  # (the status column says why)
        return text
    if j["status"] == "queued" and j.get("slurm_reason"):
        return f"{text} pending: {j['slurm_reason']}"
    if j.get("node"):
        text += f" {j['node']}"
    if j["status"] == "running" and j.get("elapsed_s") is not None:
        text += f" {fmt.duration(j['elapsed_s'])}"
    return text


# -- tables that fit the terminal --------------------------------------------------------------

ID_LEAST = 16        # a run id cut to this still shows its date and time (a usable prefix)
NAME_LEAST = 12      # below this a run name wraps onto more lines (never cut)


@dataclass
class Col:
    """A column of `print_fitted`: `fold` wraps a cell instead of cutting it (a run name);
    `least` is the width a "cut" step may shorten it to (with "…")."""

    header: str
    cells: list[str]
    fold: bool = False
    least: int = 0

    def natural(self) -> int:
        return max([cell_len(self.header)] + [cell_len(c) for c in self.cells])


def print_fitted(console: Console, cols: list[Col],
                 steps: tuple[tuple[str, str], ...]) -> None:
    """A table within the console's width (80 when piped, unless COLUMNS says otherwise):
    while it is too wide, the next step cuts a column to its `least` width or drops it; what
    is still too wide after every step comes out of the folded column (the name), which then
    wraps rather than lose a character."""
    widths = {c.header: c.natural() for c in cols}
    shown = list(cols)

    def excess() -> int:  # (box=None: one space of padding each side of every column)
        return sum(widths[c.header] + 2 for c in shown) - console.width

    for action, header in steps:
        over = excess()
        if over <= 0:
            break
        col = next((c for c in shown if c.header == header), None)
        if col is None:
            continue
        if action == "drop":
            shown.remove(col)
        else:
            widths[header] = max(min(col.least, widths[header]), widths[header] - over)
    for col in shown:
        over = excess()
        if col.fold and over > 0:
            widths[col.header] = max(min(NAME_LEAST, widths[col.header]),
                                     widths[col.header] - over)
    table = _table()
    for col in shown:
        table.add_column(Text(col.header), width=widths[col.header], no_wrap=not col.fold,
                         overflow="fold" if col.fold else "ellipsis")
    for row in zip(*(c.cells for c in shown)):
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


def worker_lines(data: dict) -> list[str]:
    """`cream worker status`: the daemon, the workers the store knows, the jobs running."""
    pid = data["daemon_pid"]
    lines = [f"daemon: {'pid ' + str(pid) if pid else 'not running'}"]
    for w in data["workers"][:5]:
        lines.append(f"worker {w['id']}: {w['liveness']}, heartbeat "
                     f"{fmt.duration(data['time'] - w['heartbeat_at'])} ago")
    for j in data["running_jobs"]:
        lines.append(f"job {j['id']} run {j['run_id']} pid {j['pid']} on {j['worker']}")
    return lines


# -- cream compare ----------------------------------------------------------------------------


def print_compare(data: dict, console: Console | None = None) -> None:
    """The runs, the config diff, then the training signals and the evaluation as separate
    tables, the evaluation's columns split over several tables when the terminal is narrow,
    so that every number stays on one line (two runs with two sets fit 80 columns)."""
    console = console or Console()
    names = labels(data["runs"], MAX_LABEL)
    by_id = dict(zip((r["id"] for r in data["runs"]), names))

    _print_table(console, "runs", ["run", "id", "method", "status"],
                 [[n, r["id"], r["method"], r["status"]] for n, r in zip(names, data["runs"])])
    console.print()
    if data["config_diff"]:
        _print_table(console, "config diff", ["key", *names],
                     [[k, *(fmt.config_value(v) for v in vs)]
                      for k, vs in data["config_diff"].items()])
    else:
        console.print("config diff: " + ("no differences" if len(names) > 1
                                         else "one run, nothing to compare"))

    console.print()
    rows = [r for r in data["rows"] if r["iteration"] is not None]
    if rows:
        _print_table(console, "iterations",
                     ["run", "model", "t", "status", "pairs", "mean τ", "mean C", "agree"],
                     [[by_id[r["run"]], r["model"], str(r["iteration"]), r["status"] or "-",
                       fmt.num(r["pairs"], "{}"), fmt.num(r["mean_tau"]),
                       fmt.num(r["mean_consistency"]), fmt.num(r["agreement"])] for r in rows])
    else:
        console.print("iterations: none yet")

    console.print()
    evaluated = [r for r in data["rows"] if r["eval"]]
    if not evaluated:
        console.print("evaluation: none yet")
        return
    cols = _eval_columns(evaluated)
    cells = []
    for r in data["rows"]:
        ev = r["eval"] or {}
        sets = ev.get("sets") or {}
        cells.append([by_id[r["run"]], r["model"],
                      *(fmt.num((sets.get(s) or {}).get(k)) for _, s, k in cols), _win(ev),
                      fmt.num(ev.get("judge_score"), "{:.2f}"),
                      fmt.num(ev.get("mean_length"), "{:.1f}")])
    headers = ["run", "model", *(c[0] for c in cols), "win/tie/loss", "score", "len"]
    for i, part in enumerate(_fit_columns(headers, cells, keys=2, width=console.width)):
        if i:
            console.print()
        _print_table(console, "evaluation" if i == 0 else "evaluation (continued)",
                     [headers[j] for j in part], [[row[j] for j in part] for row in cells])


def _eval_columns(rows: list[dict]) -> list[tuple[str, str, str]]:
    """(header, set, key) per evaluation column: each set's gen_acc, and ll_acc for a set
    that has it anywhere; a set with only gen_acc is headed by its bare name."""
    sets: dict[str, bool] = {}
    for row in rows:
        for name, s in ((row["eval"] or {}).get("sets") or {}).items():
            has_ll = isinstance(s, dict) and s.get("ll_acc") is not None
            sets[name] = sets.get(name, False) or has_ll
    cols = []
    for name, has_ll in sets.items():
        if has_ll:
            cols += [(f"{name} gen", name, "gen_acc"), (f"{name} ll", name, "ll_acc")]
        else:
            cols.append((name, name, "gen_acc"))
    return cols


def _win(ev: dict) -> str:
    win = ev.get("win") or {}
    rates = [win.get(k) for k in ("win_rate", "tie_rate", "loss_rate")]
    if all(r is None for r in rates):
        return "-"
    return "/".join(fmt.num(r, "{:.2f}") for r in rates)


def _print_table(console: Console, title: str, headers: list[str],
                 rows: list[list[str]]) -> None:
    table = _table(title)
    # plain Text: a value like "[mc, arith]" is not rich markup
    for h in headers:
        table.add_column(Text(h), overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


def _fit_columns(headers: list[str], rows: list[list[str]], keys: int,
                 width: int) -> list[list[int]]:
    """Column indexes for each table: the `keys` first columns in every one, the others
    packed in order while the table fits `width` (a table with box=None takes 2 characters of
    padding per column)."""
    widths = [max([len(h)] + [len(r[j]) for r in rows]) + 2 for j, h in enumerate(headers)]
    parts: list[list[int]] = []
    for j in range(keys, len(headers)):
        if parts and sum(widths[i] for i in parts[-1]) + widths[j] <= width:
            parts[-1].append(j)
        else:
            parts.append(list(range(keys)) + [j])
    return parts or [list(range(len(headers)))]
