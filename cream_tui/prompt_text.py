"""The drill-down in words, shared by the dashboard's screens and `cream show`: the iteration's
summary line, the glossary, a prompt's cells in the list, and one prompt in full (Rich text,
which the screen scrolls and the CLI prints)."""

from __future__ import annotations

from rich.text import Text

from cream_engine import prompt_view as pv
from cream_tui import format as fmt

GLOSSARY = ("τ: how alike r_t and r_t−1 rank the responses (1 same, −1 reversed) · C = (τ+1)/2, "
            "CREAM's pair weight · agree: judge and r_t pick alike (– no judge)")
SHORT = {"implicit": "r_t", "previous_implicit": "r_t−1", "judge": "judge",
         "oracle": "oracle"}
SCIR_NOTE = ("unlabeled (SCIR): which of y1, y2 is chosen is decided in each training step, "
             "only where both reward models agree")


def summary_text(run_name: str, s: pv.IterationSummary) -> Text:
    """One iteration in a line or two: what exists, τ and C, pairs and why the others have
    none, agreement, unparsable judgments."""
    text = Text()
    text.append(f"{run_name} · iteration {s.iteration}", style="bold")
    text.append(f" · {s.method}, pairs by {pv.REWARD_LABELS.get(s.pair_reward, s.pair_reward)}")
    per = round(s.responses / s.prompts) if s.prompts else 0
    tau = (f"mean τ {fmt.num(s.mean_tau, '{:+.2f}')} (n={s.with_tau})" if s.with_tau else
           "mean τ - (no previous model)" if "consistency" in s.files else "mean τ -")
    parts = [f"{s.prompts} prompts × {per}", tau,
             f"mean C {fmt.num(s.mean_consistency, '{:.2f}')}"]
    if s.pairs is None:
        parts.append("pairs not made yet")
    else:
        dropped = ", ".join(f"{n} {kind}" for kind, n in s.without_pair)
        parts.append(f"{s.pairs} pairs" + (f" ({s.prompts - s.pairs} without: {dropped})"
                                          if s.prompts - s.pairs else ""))
    if s.agreement is not None:
        parts.append(f"agree {s.agreement:.2f} (n={s.agreement_n})")
    if s.judge_unparsable:
        parts.append(f"{s.judge_unparsable} judgments unparsable")
    missing = [paths for stage, paths in (("generate", "responses"), ("score", "scores"),
                                          ("consistency", "consistency"), ("pairs", "pairs"))
               if stage not in s.files]
    if missing:
        parts.append("no " + "/".join(missing) + " yet")
    text.append(" · " + fmt.joined(parts))
    return text


def pair_cell(p: pv.PromptSummary) -> str:
    """✓ and the pair's weight, or ✗ and why there is none ("…" while pairs are not made)."""
    if p.pair is not None:
        return (f"✓ w {p.pair.weight:.2f}" if isinstance(p.pair.weight, (int, float))
                else "✓") + ("" if p.pair.labeled else " y1/y2")
    if p.reason_kind is None:
        return "…"
    return ("✗ " if p.pairs_made else "… ") + p.reason_kind


def agree_cell(p: pv.PromptSummary) -> str:
    if p.pair is None or p.pair.agree is None:
        return "–"
    return "yes" if p.pair.agree else "no"


def pair_text(d: pv.PromptDetail) -> Text:
    s = d.summary
    text = Text()
    if s.pair is not None:
        p = s.pair
        if p.labeled:
            text.append(f"✓ chosen #{p.chosen + 1}", style="bold green")
            text.append("  ")
            text.append(f"✗ rejected #{p.rejected + 1}", style="bold red")
        else:
            text.append(f"pair y1 #{p.chosen + 1}, y2 #{p.rejected + 1}", style="bold")
        text.append(f" · weight {fmt.num(p.weight, '{:.3f}')} · margin "
                    f"{fmt.num(p.margin, '{:+.4g}')} ({pv.REWARD_LABELS.get(d.pair_reward)})")
        if p.agree is not None:
            text.append(f" · judge and implicit {'agree' if p.agree else 'disagree'}")
        if not p.labeled:
            text.append(f"\n{SCIR_NOTE}", style="dim")
    elif s.pairs_made:
        text.append(f"no pair: {s.reason}", style="bold yellow")
    else:
        text.append("pairs not made yet", style="dim")
        if s.reason:
            text.append(f" (will have none: {s.reason})", style="yellow")
    return text


def _judgments(r: pv.ResponseDetail) -> Text:
    text = Text()
    k = len(r.judge_scores)
    for j, score in enumerate(r.judge_scores):
        conf = r.judge_confidence[j] if j < len(r.judge_confidence) else None
        raw = r.judge_texts[j].strip() if j < len(r.judge_texts) else ""
        head = f"judge {j + 1}/{k}: " + ("unparsable" if score is None else f"score {score:.2f}")
        if conf is not None:
            head += f" (mass on digits {conf:.2f})"
        text.append(head, style="magenta")
        text.append(("\n" + raw) if raw else " · no justification written", style="")
        text.append("\n")
    return text


def response_header(r: pv.ResponseDetail, d: pv.PromptDetail) -> Text:
    pair = d.summary.pair
    text = Text(f"#{r.index + 1}", style="bold")
    if pair is not None and r.index in (pair.chosen, pair.rejected):
        chosen = r.index == pair.chosen
        if pair.labeled:
            text.append(" ✓ chosen" if chosen else " ✗ rejected",
                        style="bold green" if chosen else "bold red")
        else:
            text.append(" y1" if chosen else " y2", style="bold")
    n = len(d.responses)
    for name, value in r.rewards:
        rank = r.rank(name)
        text.append(f"  {SHORT.get(name, name)} {fmt.num(value, '{:.4g}')}")
        if rank is not None:
            text.append(f" (rank {rank}/{n})", style="dim")
    if r.judge_scores:
        text.append("  [" + ", ".join(fmt.num(s, "{:.2f}") for s in r.judge_scores) + "]",
                    style="magenta")
    if r.tokens is not None:
        text.append(f"  {r.tokens} tokens", style="dim")
    return text


def detail_text(run_name: str, d: pv.PromptDetail) -> Text:
    """One prompt in full: the header, the pair, the prompt, then each response with its
    rewards, ranks and the judge's texts."""
    s = d.summary
    text = Text()
    text.append(f"prompt {s.prompt_id}", style="bold")
    text.append(f" · {run_name} iteration {d.iteration} · {d.method} · τ "
                f"{fmt.num(s.tau, '{:+.2f}')} · C {fmt.num(s.consistency, '{:.2f}')}\n")
    text.append_text(pair_text(d))
    text.append("\n\nprompt\n", style="bold underline")
    if len(d.messages) > 1:
        for role, content in d.messages:
            text.append(f"[{role}] ", style="bold")
            text.append(content.strip() + "\n")
    else:
        text.append((d.prompt or (d.messages[0][1] if d.messages else "")).strip() + "\n")
    for r in d.responses:
        text.append("\n")
        text.append_text(response_header(r, d))
        text.append("\n")
        text.append(r.text.strip() + "\n" if r.text.strip() else "(empty response)\n",
                    style="" if r.text.strip() else "dim")
        text.append_text(_judgments(r))
    return text
