"""Per-process detail for the GPU view: user, command, host CPU and RSS. Light layer."""

from __future__ import annotations
