"""Kendall's τ and C against values worked out by hand."""

from __future__ import annotations

import pytest

from cream_engine.stages.consistency import (
    consistency_rate,
    implicit_rewards,
    kendall_tau,
    ordinal_ranks,
    per_prompt,
    summarize,
)


def test_ordinal_ranks_break_ties_by_index() -> None:
    assert ordinal_ranks([0.3, 0.1, 0.2]) == [2, 0, 1]
    assert ordinal_ranks([1.0, 1.0, 0.0]) == [1, 2, 0]


@pytest.mark.parametrize("a, b, tau", [
    # identical order: all 10 pairs concordant
    ([1, 2, 3, 4, 5], [10, 20, 30, 40, 50], 1.0),
    # reversed: all 10 discordant
    ([1, 2, 3, 4, 5], [5, 4, 3, 2, 1], -1.0),
    # one adjacent swap (3,4): 9 concordant, 1 discordant -> 8/10
    ([1, 2, 3, 4, 5], [1, 2, 4, 3, 5], 0.8),
    # N = 4, ranks b = [1, 0, 3, 2]: pairs (0,1) D, (2,3) D, the other 4 C -> (4-2)/6
    ([0.1, 0.2, 0.3, 0.4], [-1.0, -2.0, 5.0, 3.0], 1 / 3),
    # ties in b broken by index: b ranks [0, 1, 2] -> same as a
    ([1, 2, 3], [7, 7, 9], 1.0),
])
def test_kendall_tau_by_hand(a: list, b: list, tau: float) -> None:
    assert kendall_tau(a, b) == pytest.approx(tau)


def test_consistency_rate_by_hand() -> None:
    assert consistency_rate(1.0) == 1.0
    assert consistency_rate(-1.0) == 0.0
    assert consistency_rate(0.8) == pytest.approx(0.9)   # N = 5: C moves in steps of 0.1
    assert consistency_rate(1 / 3) == pytest.approx(2 / 3)


def test_missing_rewards_leave_a_prompt_out() -> None:
    assert per_prompt([1.0, None, 2.0], [1.0, 2.0, 3.0]) == (None, None)
    assert per_prompt([1.0, 2.0], None) == (None, None)
    assert per_prompt([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == (-1.0, 0.0)
    s = summarize([0.5, None, 1.0])
    assert s == {"mean": 0.75, "std": 0.25, "count": 2}
    with pytest.raises(ValueError):
        kendall_tau([1.0], [1.0])


def test_implicit_rewards_per_iteration() -> None:
    rec = {"tokens": [2, 4],
           "logp": {"current": [-2.0, -6.0], "reference": [-3.0, -4.0], "previous": [-1.0, -9.0]}}
    # t = 0: the policy is M_0; length-normalised log-likelihood, no previous model
    assert implicit_rewards({"tokens": [2, 4], "logp": {"current": [-2.0, -6.0]}}, 0) == \
        ([-1.0, -1.5], None)
    # t = 1: r_1 = log π_1 − log π_0; previous (M_0) ranks by log π_0 / |y|
    assert implicit_rewards(rec, 1) == ([1.0, -2.0], [-1.5, -1.0])
    # t = 2: r_{1} = log π_1 − log π_0 from the previous model's pass
    assert implicit_rewards(rec, 2) == ([1.0, -2.0], [2.0, -5.0])
