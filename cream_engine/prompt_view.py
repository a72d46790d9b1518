"""What one iteration's prompts became: responses, judge scores, implicit rewards, rankings, consistency and the chosen pair (for the drill-down screen and `cream show`). Light layer: standard library only."""

from __future__ import annotations
