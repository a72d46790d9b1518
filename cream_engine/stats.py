"""How far an accuracy measured on n items can be trusted, and whether two of them differ by
more than noise: what a comparison of runs prints beside every accuracy.

- One proportion k/n: the Wilson score interval (Wilson 1927), which stays inside [0, 1] and
  keeps its coverage for small n and for k = 0 or n, where the textbook p ± z·√(p(1−p)/n)
  collapses to a point.
- A difference of two independent proportions k1/n1 − k2/n2: Newcombe's hybrid score interval
  (Newcombe 1998, "method 10"), built from the two Wilson intervals. The difference is within
  noise when that interval contains 0. (A two-proportion z-test says the same for large n, but
  misbehaves at the small n of a demo and at 0 % or 100 %.)

Light layer: standard library only.
"""

from __future__ import annotations

import math

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


def _check(k: int, n: int) -> None:
    if not (isinstance(k, int) and isinstance(n, int) and 0 <= k <= n):
        raise ValueError(f"k = {k!r}, n = {n!r}: need integers with 0 <= k <= n")
