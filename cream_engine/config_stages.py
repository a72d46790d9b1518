"""The config sections of what runs around the self-rewarding loop: the seed SFT that turns
M0 into M1 before iteration 0 (`[sft]`), and the external reward model of the Oracle baseline
(`[oracle]`). Their defaults follow the CREAM paper (Wang et al., ICLR 2025): 5 epochs of
SFT at lr 5e-6, the loss on the assistant's tokens only.

Light layer: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from cream_engine.errors import ConfigError
from cream_engine.sections import Section, _f, _show

BUNDLED_SEED = "bundled:seed"


@dataclass(frozen=True)
class SftConfig(Section):
    _name = "sft"
    enabled: bool = _f(False, "fine-tune M0 on human-written seed data first (M0 -> M1, TRL's "
                       "SFTTrainer, loss on the assistant's tokens only); the loop then starts "
                       "from M1 and M0 stays the rewarding reference")
    data: str = _f(BUNDLED_SEED, "seed data: bundled:seed or a JSONL file of "
                   '{"messages": [...]} lines ending with the assistant\'s reply (relative to '
                   "this file)")
    epochs: int = _f(5, "passes over the seed data", lo=1, hi=100)
    learning_rate: float = _f(5e-6, "peak learning rate (cosine schedule)", lo=0.0, hi=1.0,
                              lo_open=True)
    batch_size: int = _f(8, "examples per batch, split over the training processes", lo=1)
    max_length: int = _f(512, "tokens per example at most (longer are truncated)", lo=8)
    max_examples: int = _f(0, "seed examples used at most, first in file order (0 = all)",
                           lo=0)


@dataclass(frozen=True)
class OracleConfig(Section):
    _name = "oracle"
    model: str = _f("", "method = oracle: the external reward model that ranks the responses "
                    "(a sequence-classification model with one output: a Hugging Face id, a "
                    "local folder, or bundled:tiny-reward for tests)")
    batch_size: int = _f(8, "responses per reward-model batch", lo=1)

    def check(self) -> None:
        if self.model.startswith("bundled:") and self.model != "bundled:tiny-reward":
            raise ConfigError(f"[oracle] model = {_show(self.model)}: unknown bundled reward "
                              "model (known: bundled:tiny-reward)")
