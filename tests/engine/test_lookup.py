"""Finding a run from what a user types (`cream_engine/lookup.py` through `Store.find_run`):
exact id, exact name (the newest), a prefix of either matching one run; several is an error
that lists them."""

from __future__ import annotations

import pytest

from cream_engine.errors import RunNotFound, UsageError
from cream_engine.lookup import MAX_LISTED, AmbiguousRun
from cream_engine.store import Store


def add(store: Store, run_id: str, name: str, created: float) -> None:
    store.create_run(run_id, name=name, method="cream", model="m", iterations=1,
                     run_dir=f"/r/{run_id}", config_toml="")
    store.execute("UPDATE runs SET created_at = ? WHERE id = ?", [created, run_id])


@pytest.fixture
def runs(store: Store) -> Store:
    add(store, "20260101-100000-demo-cream-aa01", "demo-cream", 100.0)
    add(store, "20260101-100001-demo-srlm-bb02", "demo-srlm", 101.0)
    add(store, "20260102-090000-demo-cream-cc03", "demo-cream", 200.0)   # the same name again
    add(store, "20260103-120000-exp_1-dd04", "exp_1", 300.0)
    add(store, "20260103-120000-exp%1-ee05", "exp%1", 300.0)
    return store


def test_exact_id_and_exact_name(runs: Store) -> None:
    assert runs.find_run("20260101-100000-demo-cream-aa01")["name"] == "demo-cream"
    # an exact name is the newest run of that name, though an older one shares it
    assert runs.find_run("demo-cream")["id"] == "20260102-090000-demo-cream-cc03"
    assert runs.find_run("exp_1")["id"] == "20260103-120000-exp_1-dd04"   # `_` is no wildcard


def test_unique_prefixes(runs: Store) -> None:
    assert runs.find_run("demo-s")["id"] == "20260101-100001-demo-srlm-bb02"
    # several runs share the name: the prefix names one name, so its newest run
    assert runs.find_run("demo-c")["id"] == "20260102-090000-demo-cream-cc03"
    assert runs.find_run("20260102")["id"] == "20260102-090000-demo-cream-cc03"
    assert runs.find_run("20260101-100000")["id"] == "20260101-100000-demo-cream-aa01"
    assert runs.find_run("exp%")["id"] == "20260103-120000-exp%1-ee05"     # `%` neither
    assert runs.find_run("nope") is None and runs.find_run("") is None
    with pytest.raises(RunNotFound, match="run 'nope': no such run"):
        runs.require_run("nope")


def test_an_ambiguous_reference_lists_the_candidates(runs: Store) -> None:
    with pytest.raises(AmbiguousRun) as err:
        runs.require_run("demo")
    line = err.value.line
    assert isinstance(err.value, UsageError) and err.value.exit_code == 2
    assert line.startswith("run 'demo': ambiguous, 2 runs match: ")
    # newest first, each with its id and name; the older demo-cream is reached by its id
    assert "20260102-090000-demo-cream-cc03 (demo-cream), " \
           "20260101-100001-demo-srlm-bb02 (demo-srlm)" in line
    with pytest.raises(AmbiguousRun, match="ambiguous, 2 runs match"):
        runs.find_run("20260101")       # an id prefix of two runs
    with pytest.raises(AmbiguousRun, match=r"ambiguous, 2 runs match: .*exp"):
        runs.find_run("exp")


def test_a_long_list_is_cut_with_a_count(store: Store) -> None:
    for k in range(12):
        add(store, f"2026-{k:02d}", f"sweep-{k:02d}", float(k))
    with pytest.raises(AmbiguousRun) as err:
        store.find_run("sweep")
    line = err.value.line
    assert "\n" not in str(err.value)
    assert line.count("(sweep-") == MAX_LISTED and line.endswith(
        "…and 4 more (give more of the id or the name)")
    assert "2026-11 (sweep-11)" in line and "2026-00" not in line   # the newest are listed
