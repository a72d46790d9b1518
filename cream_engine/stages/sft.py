"""Stage `sft` (before iteration 0, with `[sft] enabled`): the seed SFT, M0 -> M1.

Being written: see the session's issue 14.
"""

from __future__ import annotations

from typing import Any


def run(ctx: Any, t: int) -> dict:
    raise NotImplementedError("the seed SFT stage is being written")
