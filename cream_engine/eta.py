"""Estimated time to finish a run and the queue, from measured per-stage rates. Light layer."""

from __future__ import annotations
