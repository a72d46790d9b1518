"""Method presets: each method with the settings of the paper it comes from, so that a run
can start from what the authors ran (`cream init --method M`) and `cream validate` can say
where a config departs from it.

Every value here is cited to its paper; what a paper does not state is left at our default
and not listed (so it is never reported as a departure).
- srlm: Self-Rewarding Language Models (Yuan et al. 2024, arXiv 2401.10020).
- cream: CREAM (Wang et al., ICLR 2025, arXiv 2410.12735). Its trainer's cosine schedule is
  ours too (always), so only the warm-up ratio is a setting.
- dpo: the CREAM paper's "SRLM" baseline (the same pipeline, implicit reward, C = 1): CREAM's
  settings.
- oracle: the CREAM paper's Oracle baseline: CREAM's settings, and an external reward model
  the user must name (`[oracle] model`).
- scir: Self-Consistent Internal Rewards (Zhou et al., arXiv 2502.08922). We could not check
  the paper's training settings, so the preset keeps our defaults and lists none.

Light layer: standard library + config.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from cream_engine.config import SECTIONS, ExperimentConfig, to_toml
from cream_engine.errors import UsageError


@dataclass(frozen=True)
class Setting:
    """One paper setting: `[section] key = value`, shown in the paper's terms (`N = 5`)."""

    section: str
    key: str
    value: Any
    shown: str


@dataclass(frozen=True)
class Preset:
    method: str
    paper: str        # the full citation, for the config's first comment
    cite: str         # short, beside each key: "CREAM (Wang et al. 2025)"
    whose: str        # in a departure note: "CREAM's N = 5"
    settings: tuple[Setting, ...]
    note: str = ""    # a second header line, where the preset needs one


@dataclass(frozen=True)
class Departure:
    """A config value that differs from its method's paper setting."""

    method: str
    setting: Setting
    value: Any
    line: str

    def to_json(self) -> dict[str, Any]:
        return {"key": f"{self.setting.section}.{self.setting.key}", "value": self.value,
                "paper_value": self.setting.value, "paper": PRESETS[self.method].cite,
                "note": self.line}


YUAN = "Self-Rewarding Language Models (Yuan et al. 2024, arXiv 2401.10020)"
WANG = "CREAM (Wang et al., ICLR 2025, arXiv 2410.12735)"
ZHOU = "Self-Consistent Internal Rewards (Zhou et al. 2025, arXiv 2502.08922)"

SRLM_SETTINGS = (
    Setting("sft", "enabled", True, "seed SFT on"),
    Setting("generate", "n", 4, "N = 4"),
    Setting("generate", "temperature", 0.7, "temperature 0.7"),
    Setting("generate", "top_p", 0.9, "top-p 0.9"),
    Setting("judge", "samples", 3, "3 judgments averaged"),
    Setting("train", "beta", 0.1, "β = 0.1"),
    Setting("train", "learning_rate", 1e-6, "DPO lr 1e-6"),
)
# CREAM's, shared by the paper's SRLM (dpo) and Oracle baselines
CREAM_SETTINGS = (
    Setting("sft", "enabled", True, "seed SFT on"),
    Setting("sft", "epochs", 5, "5 SFT epochs"),
    Setting("sft", "learning_rate", 5e-6, "SFT lr 5e-6"),
    Setting("generate", "n", 5, "N = 5"),
    Setting("generate", "temperature", 0.8, "temperature 0.8"),
    Setting("generate", "top_p", 0.95, "top-p 0.95"),
    Setting("train", "beta", 0.1, "β = 0.1"),
    Setting("train", "learning_rate", 1e-6, "lr 1e-6"),
    Setting("train", "epochs", 1, "1 epoch"),
    Setting("train", "warmup_ratio", 0.1, "cosine schedule, 10% warm-up"),
    Setting("train", "weight_decay", 0.01, "weight decay 0.01"),
)

PRESETS: dict[str, Preset] = {
    "srlm": Preset("srlm", YUAN, "SRLM (Yuan et al. 2024)", "SRLM's",
                   (Setting("run", "method", "srlm", "LLM-as-a-Judge rewards"),
                    *SRLM_SETTINGS)),
    "cream": Preset("cream", WANG, "CREAM (Wang et al. 2025)", "CREAM's",
                    (Setting("run", "method", "cream", "consistency-regularized"),
                     *CREAM_SETTINGS,
                     Setting("consistency", "mode", "average",
                             "one dataset-mean C (the main method)"))),
    "scir": Preset("scir", ZHOU, "SCIR (Zhou et al. 2025)", "SCIR's",
                   (Setting("run", "method", "scir", "self-consistent internal rewards"),),
                   note="We could not check the paper's training settings: every other "
                        "value is our default, and [scir]'s formulas are our formulation."),
    "dpo": Preset("dpo", WANG + ", its SRLM baseline: implicit reward, C = 1",
                  "CREAM (Wang et al. 2025), SRLM baseline", "CREAM's",
                  (Setting("run", "method", "dpo", "the SRLM baseline: implicit reward, C = 1"),
                   *CREAM_SETTINGS)),
    "oracle": Preset("oracle", WANG + ", its Oracle baseline: an external reward model ranks",
                     "CREAM (Wang et al. 2025), Oracle baseline", "CREAM's",
                     (Setting("run", "method", "oracle", "the Oracle baseline"),
                      *CREAM_SETTINGS),
                     note="Set [oracle] model (the reward model) before running: `cream "
                          "validate` refuses an empty one."),
}


def preset(method: str) -> Preset:
    """The preset of `method`; a `UsageError` naming the known ones otherwise."""
    if method not in PRESETS:
        raise UsageError(f"--method {method!r}: unknown method (known: "
                         f"{', '.join(PRESETS)})")
    return PRESETS[method]


def preset_config(method: str) -> ExperimentConfig:
    """The default config with the paper's settings of `method` (not `from_dict`: the oracle
    preset leaves its model empty on purpose, for the user to fill in)."""
    values: dict[str, dict[str, Any]] = {}
    for s in preset(method).settings:
        values.setdefault(s.section, {})[s.key] = s.value
    return ExperimentConfig(**{name: SECTIONS[name](**v) for name, v in values.items()})


def preset_toml(method: str) -> str:
    """The full commented config (as `cream init` writes it) with the preset's values, a
    header citing the paper and, beside each preset key, what the paper says."""
    p = preset(method)
    cited = {(s.section, s.key): s for s in p.settings}
    lines = [f"# Preset --method {method}: the settings of {p.paper}.",
             *([f"# {p.note}"] if p.note else []),
             ("# A key marked with the paper is its setting; `cream validate` notes a "
              "departure from it.")]
    section = ""
    for line in to_toml(preset_config(method), comments=True).split("\n"):
        header = re.fullmatch(r"\[(\w+)\]", line)
        key = re.match(r"(\w+) = ", line)
        if header:
            section = header.group(1)
        elif key and (section, key.group(1)) in cited:
            line += f"  # {p.cite}: {cited[section, key.group(1)].shown}"
        elif key and (section, key.group(1)) == ("oracle", "model") and method == "oracle":
            line += "  # must be set: the external reward model that ranks the responses"
        lines.append(line)
    return "\n".join(lines)


def departures(config: ExperimentConfig) -> list[Departure]:
    """Where `config` differs from the paper settings of its own method, in preset order."""
    p = PRESETS[config.run.method]
    out = []
    for s in p.settings:
        value = getattr(getattr(config, s.section), s.key)
        if _same(value, s.value):
            continue
        line = (f"[{s.section}] {s.key} = {_shown(value)} departs from {p.whose} {s.shown} "
                f"(cream init --method {p.method} writes the paper's settings)")
        out.append(Departure(p.method, s, value, line))
    return out


def _same(value: Any, paper: Any) -> bool:
    if isinstance(paper, float) and not isinstance(value, bool):
        return isinstance(value, (int, float)) and math.isclose(value, paper, rel_tol=1e-9)
    return type(value) is type(paper) and value == paper


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)

