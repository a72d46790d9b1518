"""How far an accuracy measured on n items can be trusted, and whether two of them differ by
more than noise: what a comparison of runs prints beside every accuracy.

- One proportion k/n: the Wilson score interval (Wilson 1927), which stays inside [0, 1] and
  keeps its coverage for small n and for k = 0 or n, where the textbook p ± z·√(p(1−p)/n)
  collapses to a point.
- A difference of two independent proportions k1/n1 − k2/n2: Newcombe's hybrid score interval
  (Newcombe 1998, "method 10"), built from the two Wilson intervals. The difference is within
  noise when that interval contains 0. (A two-proportion z-test says the same for large n, but
  misbehaves at the small n of a demo and at 0 % or 100 %.)
- A mean of n values with standard deviation s: Student's t interval, mean ± t·s/√n.
- A difference of two such means: Welch's interval, with the Welch–Satterthwaite degrees of
  freedom (rounded down, which only widens it).

Light layer: standard library only.
"""

from __future__ import annotations

import math
from functools import lru_cache

Z95 = 1.96  # the standard normal's 97.5% quantile (1.95996…, as rounded in the literature)


def proportion_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of the proportion k/n (95% by default); (0, 1) when n = 0.

    With p = k/n:  (p + z²/2n ± z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n)."""
    _check(k, n)
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # (at k = 0 or n one end is exactly 0 or 1; the clamp only removes rounding's 1e-17)
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(k1: int, n1: int, k2: int, n2: int, z: float = Z95
                        ) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 − p2 (independent samples), from the Wilson
    intervals (l1, u1) of p1 and (l2, u2) of p2, δ = p1 − p2:
      low  = δ − √((p1 − l1)² + (u2 − p2)²)
      high = δ + √((u1 − p1)² + (p2 − l2)²)"""
    _check(k1, n1)
    _check(k2, n2)
    if n1 == 0 or n2 == 0:
        return -1.0, 1.0
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = proportion_interval(k1, n1, z)
    l2, u2 = proportion_interval(k2, n2, z)
    delta = p1 - p2
    return (delta - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            delta + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def difference_verdict(k1: int, n1: int, k2: int, n2: int, *,
                       labels: tuple[str, str] = ("the first", "the second")) -> str:
    """One sentence: whether k1/n1 and k2/n2 differ by more than noise, by whether Newcombe's
    95% interval of the difference (`difference_interval`) contains 0."""
    if n1 == 0 or n2 == 0:
        return "no items on one side: nothing to compare."
    p1, p2 = k1 / n1, k2 / n2
    low, high = difference_interval(k1, n1, k2, n2)
    shown = (f"{labels[0]} {p1:.3f} (n = {n1}) vs {labels[1]} {p2:.3f} (n = {n2}): "
             f"difference {p1 - p2:+.3f}, 95% CI {low:+.2f} to {high:+.2f}")
    if low <= 0 <= high:
        return f"{shown}, within noise."
    higher = labels[0] if p1 > p2 else labels[1]
    return f"{shown}: {higher} is higher, beyond noise."


@lru_cache(maxsize=256)
def t_quantile(df: int, level: float = 0.95) -> float:
    """The two-sided `level` quantile of Student's t with `df` degrees of freedom: the t with
    P(|T| <= t) = level (12.706 for df = 1, 2.228 for 10, → 1.960). Found by bisection on the
    closed-form distribution for whole df (Abramowitz & Stegun 26.7.3-4, `_t_within`); past
    1,000 degrees of freedom, the value at 1,000 (within 0.002 of the limit)."""
    if df < 1:
        raise ValueError(f"df = {df!r}: need at least 1 degree of freedom")
    df = min(int(df), 1000)
    low, high = 0.0, 1.0
    while _t_within(high, df) < level:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_within(mid, df) < level else (low, mid)
    return (low + high) / 2


def _t_within(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with whole `df`, with θ = atan(t/√df) (A&S 26.7.3-4):
    odd df:  (2/π)·(θ + sin θ·(cos θ + (2/3)cos³θ + … + (2·4…(df−3))/(1·3…(df−2))·cos^(df−2)θ))
    even df: sin θ·(1 + (1/2)cos²θ + (1·3)/(2·4)cos⁴θ + … + (1·3…(df−3))/(2·4…(df−2))·cos^(df−2)θ)
    """
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2:
        term, total = c, 0.0
        for j in range(3, df + 1, 2):        # terms up to cos^(df−2): none for df = 1
            total += term
            term *= c * c * (j - 1) / j
        return 2 / math.pi * (theta + s * total)
    term, total = 1.0, 0.0
    for j in range(2, df + 1, 2):
        total += term
        term *= c * c * (j - 1) / j
    return s * total


def mean_interval(mean: float, sd: float, n: int, level: float = 0.95
                  ) -> tuple[float, float] | None:
    """Student's t interval of a mean of n values with sample standard deviation `sd`:
    mean ± t_(n−1)·sd/√n; None for n < 2 (no spread to go on)."""
    if n < 2 or sd < 0 or not math.isfinite(sd):
        return None
    half = t_quantile(n - 1, level) * sd / math.sqrt(n)
    return mean - half, mean + half


def mean_difference_interval(m1: float, s1: float, n1: int, m2: float, s2: float, n2: int,
                             level: float = 0.95) -> tuple[float, float] | None:
    """Welch's interval of m1 − m2 (independent samples, unequal variances):
    δ ± t_ν·√(s1²/n1 + s2²/n2), ν = (v1 + v2)² / (v1²/(n1−1) + v2²/(n2−1)) with vi = si²/ni,
    rounded down. None when a side has n < 2."""
    if n1 < 2 or n2 < 2:
        return None
    v1, v2 = s1 * s1 / n1, s2 * s2 / n2
    delta = m1 - m2
    if v1 + v2 == 0:   # (no spread on either side: the difference is what it is)
        return delta, delta
    nu = (v1 + v2) ** 2 / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
    half = t_quantile(max(1, math.floor(nu)), level) * math.sqrt(v1 + v2)
    return delta - half, delta + half


def _check(k: int, n: int) -> None:
    if not (isinstance(k, int) and isinstance(n, int) and 0 <= k <= n):
        raise ValueError(f"k = {k!r}, n = {n!r}: need integers with 0 <= k <= n")
