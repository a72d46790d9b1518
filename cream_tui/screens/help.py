"""The keys, screen by screen, then a glossary of what the numbers mean (escape, q or ?
closes it)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = """\
[b]Runs and queue[/] (home)
  ↑ ↓      move between runs
  enter    open the run under the cursor
  s        submit a config (asks for the TOML path)
  c        cancel the run (asks first; finished stages stay)
  r        retry a failed run, resume a cancelled one
  + -      raise / lower a queued run's priority
  d        drain the queue: running jobs finish, nothing
           new starts; d again resumes
  /        filter by name, id, method or status
           (enter keeps the filter, escape clears it)
  space    mark a run; m compares the marked runs
  h        several boxes: show one host's runs, the next,
           then all (s submits there, or type host:path)

[b]Run[/]
  f        follow the log tail on / off
  p        the prompts of the iteration under the cursor
           (enter on the iteration table does the same)
  escape   back to the runs

[b]Prompts[/] (one iteration: what the model wrote)
  enter    one prompt: its responses, the judge's text and
           scores, implicit rewards, ranks and the pair
  t        sort by τ_j (again: the other way)
  /        search the prompts' text
  [ ]      the previous / next iteration
  escape   back

[b]Compare[/]
  e        the next evaluation metric in the chart
  escape   back to the runs

[b]GPUs[/] (g)
  ↑ ↓ j k  pick a GPU: its processes (user, GPU memory,
           SM%, host CPU and memory, run, command) below
  h        its history, when it does not fit below
  escape   back
  colours  load and memory yellow from 50%, red from 80%;
           temperature yellow from 70 °C, red from 80 °C

[b]Anywhere[/]
  g        GPUs: utilisation, memory, temperature, power
           and the processes on each, mapped to runs
  ?        this help (escape closes it)
  q        quit

Over SSH: ssh -t host cream tui; several boxes in one dashboard:
cream tui --host A --host B. NO_COLOR=1: no colours."""

GLOSSARY = """\
[b]Training signals[/]
  M_k      the model after k steps: M0 the start (M1 the seed
           SFT's with \\[sft]), M_t+1 what iteration t trained
  τ        Kendall's τ between the rankings of a prompt's
           responses by M_t and by M_t-1 (CREAM's consistency):
           1 same order, 0 unrelated, -1 reversed; mean τ
           averages the prompts of an iteration
  C        CREAM's consistency rate (τ + 1) / 2, in [0, 1]: how
           much a preference pair is trusted (SRLM: C = 1)
  agree    share of pairs where the judge and the implicit
           reward prefer the same response (SCIR's measure)
  ln 2     0.693, the DPO loss while the policy still equals its
           reference (reward margin 0); below it, it learns
  loss/margin charts never zoom into less than a minimum span,
           so numerical noise at the start draws flat

[b]Evaluation[/] (each number is a mean over n items)
  generative acc.    greedy answer, the letter or number
                     after "Answer:" (CREAM's way)
  log-lik. acc.      the option with the highest
                     log-likelihood (lm-evaluation-harness);
                     norm: per character, bytes: per byte
  unparsable         share of replies with no answer to
                     extract (counted as wrong)
  win / tie / loss   M_k against M_k-1 on held-out prompts,
                     the fixed judge asked in both orders
  judge score        the fixed judge's mean score, 0-5
  length             mean reply length in tokens (its spread
                     is estimated from the replies' characters)

[b]Intervals and verdicts[/]
  0.36 (0.27–0.46)   the value and its 95% interval: Wilson
                     for shares, Student's t for means
  n = 200            how many items the mean is over
  better             the 95% interval of the difference
                     (Newcombe for shares, Welch for means)
                     does not contain 0
  within noise       it does: at this n the runs cannot be
                     told apart; more items would tell"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Static("[b]cream[/] dashboard keys", classes="dialog-title")
            yield Static(KEYS)
            yield Static("[b]Glossary[/]", classes="dialog-title")
            yield Static(GLOSSARY)

    def action_close(self) -> None:
        self.dismiss(None)
