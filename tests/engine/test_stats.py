"""Wilson and Newcombe intervals against hand-computed values and Newcombe's (1998) tables."""

from __future__ import annotations

import pytest

from cream_engine.stats import (
    _t_within,
    difference_interval,
    difference_verdict,
    mean_difference_interval,
    mean_interval,
    proportion_interval,
    t_quantile,
)


def test_wilson_interval_by_hand() -> None:
    # k = 3, n = 12, z = 1.96: z²/n = 0.320133, centre = (0.25 + 0.160067)/1.320133 = 0.310627,
    # half = 1.96·√(0.015625 + 0.0066694)/1.320133 = 0.221685
    low, high = proportion_interval(3, 12)
    assert low == pytest.approx(0.08894, abs=1e-5) and high == pytest.approx(0.53231, abs=1e-5)
    # k = 0, n = 10: the lower end is exactly 0, the upper 2·0.19208/1.38416 = 0.277540
    assert proportion_interval(0, 10) == pytest.approx((0.0, 0.277540), abs=1e-6)
    assert proportion_interval(10, 10) == pytest.approx((0.722460, 1.0), abs=1e-6)
    # Newcombe (1998a), example 81/263: 0.2553 to 0.3662
    assert proportion_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert proportion_interval(0, 0) == (0.0, 1.0)
    # a wider z, a wider interval
    assert proportion_interval(3, 12, z=2.576)[0] < low


def test_newcombe_difference_interval() -> None:
    # Newcombe (1998b), method 10, example (a) 56/70 − 48/80: 0.0524 to 0.3339
    assert difference_interval(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    # example (b) 9/10 − 3/10: 0.1705 to 0.8090
    assert difference_interval(9, 10, 3, 10) == pytest.approx((0.1705, 0.8090), abs=1e-4)
    # equal proportions: symmetric about 0
    low, high = difference_interval(3, 12, 3, 12)
    assert low == pytest.approx(-high) and low < 0 < high


def test_verdicts() -> None:
    # by hand: Wilson 3/12 = (0.088940, 0.532312), 5/12 = (0.193262, 0.680490), δ = -0.166667,
    # low = δ - √(0.161060² + 0.263823²) = -0.4758, high = δ + √(0.282312² + 0.223405²) = 0.1933
    within = difference_verdict(3, 12, 5, 12, labels=("cream", "srlm"))
    assert within == ("cream 0.250 (n = 12) vs srlm 0.417 (n = 12): difference -0.167, "
                      "95% CI -0.48 to +0.19, within noise.")
    beyond = difference_verdict(56, 70, 48, 80, labels=("cream", "srlm"))
    assert beyond.endswith("95% CI +0.05 to +0.33: cream is higher, beyond noise.")
    assert difference_verdict(48, 80, 56, 70).endswith("the second is higher, beyond noise.")
    assert difference_verdict(1, 2, 0, 0) == "no items on one side: nothing to compare."


@pytest.mark.parametrize("k, n", [(-1, 4), (5, 4), (1.5, 4)])
def test_bad_counts_are_refused(k: float, n: int) -> None:
    with pytest.raises(ValueError, match="0 <= k <= n"):
        proportion_interval(k, n)  # type: ignore[arg-type]


def test_t_distribution_by_hand_and_from_the_table() -> None:
    # closed forms: df = 1 (Cauchy) P(|T| <= 1) = (2/π)·atan(1) = 1/2; df = 2 P(|T| <= t) =
    # t/√(t² + 2), so at t = √2: 1/√2; df = 3 at t = √3: θ = π/4, (2/π)(π/4 + (1/√2)(1/√2))
    assert _t_within(1.0, 1) == pytest.approx(0.5)
    assert _t_within(2 ** 0.5, 2) == pytest.approx(2 ** -0.5)
    assert _t_within(3 ** 0.5, 3) == pytest.approx(0.5 + 1 / 3.141592653589793)
    # the printed table's 97.5% points
    for df, t in ((1, 12.706), (2, 4.303), (3, 3.182), (10, 2.228), (15, 2.131), (30, 2.042),
                  (100, 1.984)):
        assert t_quantile(df) == pytest.approx(t, abs=5e-4), df
    assert t_quantile(10, 0.90) == pytest.approx(1.812, abs=5e-4)
    assert 1.960 < t_quantile(10 ** 6) < 1.963          # (→ z)
    with pytest.raises(ValueError, match="degree"):
        t_quantile(0)


def test_mean_and_welch_intervals_by_hand() -> None:
    # 2.0 ± t_15 · 1.0/√16 = 2.0 ± 2.13145 · 0.25
    assert mean_interval(2.0, 1.0, 16) == pytest.approx((1.467137, 2.532863), abs=1e-5)
    assert mean_interval(2.0, 1.0, 1) is None            # one value: no spread
    # Welch: v1 = 1/16 = 0.0625, v2 = 1.44/20 = 0.072, ν = 0.1345² / (0.0625²/15 + 0.072²/19)
    # = 33.92 → 33, t_33 = 2.03452, half = 2.03452 · √0.1345 = 0.746139, δ = 0.5
    assert mean_difference_interval(2.0, 1.0, 16, 1.5, 1.2, 20) == pytest.approx(
        (-0.246139, 1.246139), abs=1e-5)
    assert mean_difference_interval(2.0, 0.0, 5, 1.0, 0.0, 5) == (1.0, 1.0)
    assert mean_difference_interval(2.0, 1.0, 1, 1.0, 1.0, 5) is None
