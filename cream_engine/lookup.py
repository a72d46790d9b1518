"""Finding a run from what a user types: its id, its name, or the start of either.

In this order:
1. the exact id: that run;
2. the exact name: the newest run of that name (running a config again makes another run of
   the same name; the newest is the one meant, as `cream compare demo-cream demo-srlm` after a
   second demo; an older one is named by its id);
3. a prefix of ids and names together: every run whose id starts with it, and the newest run
   of every name that starts with it. One run: that run; none: no such run; several: the
   reference is ambiguous, and the error lists them (id and name) so the user can say more.

Light layer: standard library only (the store is passed in; this module never imports it).
"""

from __future__ import annotations

from typing import Any

from cream_engine.errors import RunNotFound, UsageError

MAX_LISTED = 8   # candidates named in an ambiguity error; the rest are counted


class AmbiguousRun(UsageError):
    """A reference that matches several runs (exit 2): the line names them."""

    def __init__(self, ref: str, runs: list[dict]):
        self.ref = ref
        self.candidates = runs
        shown = ", ".join(f"{r['id']} ({r['name']})" for r in runs[:MAX_LISTED])
        more = f" …and {len(runs) - MAX_LISTED} more" if len(runs) > MAX_LISTED else ""
        super().__init__(f"run {ref!r}: ambiguous, {len(runs)} runs match: {shown}{more} "
                         "(give more of the id or the name)")


def find_run(store: Any, ref: str) -> dict | None:
    """The run `ref` names (see the module docstring), None when none matches; `AmbiguousRun`
    when several do. `store` is a `Store` (anything with `query`)."""
    if not ref:
        return None
    exact = store.query("SELECT * FROM runs WHERE id = ?", [ref])
    if exact:
        return exact[0]
    named = store.query("SELECT * FROM runs WHERE name = ? ORDER BY created_at DESC, id DESC "
                        "LIMIT 1", [ref])
    if named:
        return named[0]
    # substr, not LIKE: `_` and `%` are ordinary characters of names and ids
    by_id = store.query("SELECT * FROM runs WHERE substr(id, 1, ?) = ?", [len(ref), ref])
    by_name = store.query(
        "SELECT * FROM runs r WHERE substr(name, 1, ?) = ? AND NOT EXISTS (SELECT 1 FROM runs "
        "n WHERE n.name = r.name AND (n.created_at, n.id) > (r.created_at, r.id))",
        [len(ref), ref])
    found = {r["id"]: r for r in by_id + by_name}
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        return None
    raise AmbiguousRun(ref, sorted(found.values(), key=lambda r: (-r["created_at"], r["id"])))


def require_run(store: Any, ref: str) -> dict:
    """`find_run`, or `RunNotFound` (one line, exit 2)."""
    run = find_run(store, ref)
    if run is None:
        raise RunNotFound(ref)
    return run
