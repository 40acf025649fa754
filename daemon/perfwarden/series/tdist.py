"""Student t and normal quantiles in pure Python, so the daemon never imports scipy.

Responsibility: the critical values behind every confidence interval perfwarden
reports (``scipy.stats`` alone costs ~100 MB of RSS; the daemon's budget is 50 MB).

Numerical method:

* For ``t >= 0`` the two halves of the distribution are computed separately, each
  with full *relative* accuracy::

      tail(t)   = P(T > t)     = I_x(df/2, 1/2) / 2,  x = df / (df + t**2)
      centre(t) = P(0 < T < t) = I_y(1/2, df/2) / 2,  y = t**2 / (df + t**2)

  where ``I`` is the regularized incomplete beta function, evaluated by the modified
  Lentz algorithm on its continued fraction (Numerical Recipes, ``betacf``) on the
  side where the fraction converges (``x < (a+1)/(a+b+2)``), the other half being
  ``1/2 - half``. The prefactor ``x**a * (1-x)**b / B(a, b)`` is formed in log space
  with ``log1p``; ``log Gamma(a+1/2) - log Gamma(a)`` comes from ``math.lgamma`` for
  small ``a`` and from its asymptotic (Bernoulli) series for ``a >= 10``, where
  subtracting two large ``lgamma`` values would lose digits.
* The quantile starts from Hill's approximation (CACM Algorithm 396, 1970, as used by
  R's ``qt``) and is polished by Newton steps on whichever half is smaller: on
  ``log tail`` in the tails (well conditioned for tiny probabilities), on ``centre``
  near the median. ``df == 1`` (Cauchy) and ``df == 2`` have closed forms;
  ``df == inf`` is the normal distribution.
* The normal quantile is Acklam's rational approximation refined by one Halley step
  against ``math.erfc``.

Accuracy against ``scipy.stats.t.ppf``/``cdf`` for ``df`` in ``[1, 1e7]`` and ``p``
in ``[1e-10, 1 - 1e-10]``: typically 1e-14 relative, worst seen 8e-13 in 60 000
random draws (see ``tests/unit/test_tdist.py``). Near the median the quantile stays
*relatively* accurate, which ``scipy.stats.t.ppf`` does not (it is checked there
against ``scipy.special.betaincinv`` instead). A quantile costs ~0.1 ms.
"""

from __future__ import annotations

import functools
import math

__all__ = ["normal_quantile", "t_cdf", "t_quantile", "two_sided_critical"]

_EPS = 2.220446049250313e-16
_TINY = 1e-300
_SQRT2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_LOG_SQRT_PI = 0.5 * math.log(math.pi)
_MAX_CF_TERMS = 100_000
_MAX_NEWTON = 60

# Acklam's rational approximation of the normal quantile.
_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_B = (
    -5.447609879822406e01,
    1.615858368580409e02,
    -1.556989798598866e02,
    6.680131188771972e01,
    -1.328068155288572e01,
)
_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_D = (
    7.784695709041462e-03,
    3.224671290700398e-01,
    2.445134137142996e00,
    3.754408661907416e00,
)
_P_LOW = 0.02425

# log Gamma(z + 1/2) - log Gamma(z) - log(z)/2 ~ sum c_k / z**(2k-1), with
# c_k = (2**(1-2k) - 2) * B_2k / (2k * (2k-1))  (B_2k: Bernoulli numbers).
_HALF_RATIO_SERIES = (
    -1.0 / 8.0,
    1.0 / 192.0,
    -1.0 / 640.0,
    17.0 / 14336.0,
    -31.0 / 18432.0,
    691.0 / 180224.0,
)
_SERIES_FROM = 10.0
_BGRAT_FROM = 50.0
_INV_ODD_FACTORIALS = tuple(1.0 / math.factorial(2 * k + 1) for k in range(30))


def normal_quantile(p: float) -> float:
    """Return the standard normal quantile ``Phi**-1(p)`` for ``0 < p < 1``."""
    if not 0.0 < p < 1.0:
        msg = f"p must lie in (0, 1), got {p!r}"
        raise ValueError(msg)
    if p > 0.5:
        return -normal_quantile(1.0 - p)
    if p < _P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        c0, c1, c2, c3, c4, c5 = _C
        d0, d1, d2, d3 = _D
        x = (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / (
            (((d0 * q + d1) * q + d2) * q + d3) * q + 1.0
        )
    else:
        q = p - 0.5
        r = q * q
        a0, a1, a2, a3, a4, a5 = _A
        b0, b1, b2, b3, b4 = _B
        x = (
            (((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5)
            * q
            / (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1.0)
        )
    # One Halley step on Phi(x) = p; Phi(x) = erfc(-x/sqrt 2)/2 is relatively
    # accurate in the lower tail, where x <= 0.
    e = 0.5 * math.erfc(-x / _SQRT2) - p
    u = e * _SQRT_2PI * math.exp(0.5 * x * x)
    return x - u / (1.0 + 0.5 * x * u)


def _log_half_gamma_ratio(a: float) -> float:
    """Return ``log(Gamma(a + 1/2) / Gamma(a))`` to full relative accuracy."""
    if a < _SERIES_FROM:
        return math.lgamma(a + 0.5) - math.lgamma(a)
    inv = 1.0 / a
    inv2 = inv * inv
    acc = 0.0
    for coefficient in reversed(_HALF_RATIO_SERIES):
        acc = acc * inv2 + coefficient
    return 0.5 * math.log(a) + acc * inv


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of ``I_x(a, b)`` (modified Lentz); converges fast for
    ``x < (a + 1) / (a + b + 2)``."""
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < _TINY:
        d = _TINY
    d = 1.0 / d
    h = d
    for m in range(1, _MAX_CF_TERMS):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1.0 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1.0 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) <= _EPS:
            return h
    msg = f"incomplete beta continued fraction did not converge (a={a}, b={b})"
    raise ArithmeticError(msg)


def _ibeta_large_a_half(a: float, log_x: float) -> float:
    """Return ``I_x(a, 1/2)`` for large ``a`` by DiDonato & Morris's BGRAT series.

    The asymptotic expansion (ACM TOMS 708, 1992, eq. 9) in incomplete gamma
    functions ``Q(1/2, u) = erfc(sqrt(u))``; with ``a >= 50`` a handful of terms
    reach full precision, where the continued fraction would lose ~log10(a) digits.
    Every term is scaled by ``H = exp(-u) u**b / Gamma(b)`` so nothing overflows.
    """
    b = 0.5
    big_t = a + 0.5 * (b - 1.0)
    u = -big_t * log_x
    ratio = math.exp(_log_half_gamma_ratio(a)) / math.sqrt(big_t)
    q_gamma = math.erfc(math.sqrt(u))
    h = math.exp(-u) * math.sqrt(u / math.pi)
    total = q_gamma  # p_0 * J_0 * H
    scaled_j = q_gamma  # J_n * H
    half_log_sq = 0.25 * log_x * log_x
    power = h  # H * (log(x) / 2)**(2n - 2)
    four_t_sq = 4.0 * big_t * big_t
    b2n = b
    p = [1.0]
    for n in range(1, len(_INV_ODD_FACTORIALS)):
        p_n = sum((m * b - n) * p[n - m] * _INV_ODD_FACTORIALS[m] for m in range(1, n))
        p_n = p_n / n + (b - 1.0) * _INV_ODD_FACTORIALS[n]
        p.append(p_n)
        scaled_j = (b2n * (b2n + 1.0) * scaled_j + (u + b2n + 1.0) * power) / four_t_sq
        power *= half_log_sq
        b2n += 2.0
        term = p_n * scaled_j
        total += term
        if abs(term) <= 0.25 * _EPS * abs(total):
            break
    return ratio * total


def _halves(t: float, df: float) -> tuple[float, float]:
    """Return ``(centre, tail)`` = ``(P(0 < T < t), P(T > t))`` for ``t >= 0``.

    The half that the continued fraction computes directly is relatively accurate;
    the other is ``1/2`` minus it, which only happens when it is not small.
    """
    if t == 0.0:
        return 0.0, 0.5
    if math.isinf(t):
        return 0.5, 0.0
    a = 0.5 * df
    r = t / math.sqrt(df)
    r2 = r * r  # t**2 / df
    # x = df / (df + t**2) = 1 / (1 + r2); y = 1 - x = r2 / (1 + r2)
    log_x = -math.log1p(r2)
    if r2 < 1.0:  # log(t) rather than log(r2): r2 may underflow for tiny t
        log_y = 2.0 * (math.log(t) - 0.5 * math.log(df)) + log_x
    else:
        log_y = math.log1p(-1.0 / (1.0 + r2))
    # log of x**a * y**(1/2) / B(a, 1/2)
    log_front = a * log_x + 0.5 * log_y + _log_half_gamma_ratio(a) - _LOG_SQRT_PI
    x = 1.0 / (1.0 + r2)
    if x < (a + 1.0) / (a + 2.5):
        if a >= _BGRAT_FROM:
            tail = 0.5 * _ibeta_large_a_half(a, log_x)
        else:
            tail = 0.5 * math.exp(log_front) / a * _beta_cf(a, 0.5, x)
        return 0.5 - tail, tail
    y = r2 / (1.0 + r2)
    centre = math.exp(log_front) * _beta_cf(0.5, a, y)  # 0.5 * front / (1/2) * cf
    return centre, 0.5 - centre


def _pdf(t: float, df: float) -> float:
    """Student t density at ``t``."""
    a = 0.5 * df
    log_norm = _log_half_gamma_ratio(a) - _LOG_SQRT_PI - 0.5 * math.log(df)
    r = t / math.sqrt(df)
    return math.exp(log_norm - (a + 0.5) * math.log1p(r * r))


def _check_df(df: float) -> None:
    if not df >= 1.0:  # also rejects NaN
        msg = f"df must be >= 1, got {df!r}"
        raise ValueError(msg)


def t_cdf(x: float, df: float) -> float:
    """Return ``P(T <= x)`` for Student's t with ``df >= 1`` degrees of freedom.

    ``df`` may be fractional or ``math.inf`` (the normal distribution).
    """
    _check_df(df)
    if math.isnan(x):
        return math.nan
    if math.isinf(df):
        return 0.5 * math.erfc(-x / _SQRT2)
    t = abs(x)
    if df == 1.0:
        tail = math.atan2(1.0, t) / math.pi
    elif df == 2.0:
        s = math.sqrt(t * t + 2.0)
        tail = 1.0 / (s * (s + t)) if math.isfinite(s) else 0.0
    else:
        tail = _halves(t, df)[1]
    return tail if x < 0.0 else 1.0 - tail


def _upper_tail_start(q: float, df: float) -> float:
    """Hill's (1970) approximation of ``t`` with ``P(T > t) = q``, ``q <= 1/2``."""
    two_sided = 2.0 * q
    a = 1.0 / (df - 0.5)
    b = 48.0 / (a * a)
    c = ((20700.0 * a / b - 98.0) * a - 16.0) * a + 96.36
    d = ((94.5 / (b + c) - 3.0) / b + 1.0) * math.sqrt(a * math.pi / 2.0) * df
    y = (d * two_sided) ** (2.0 / df)
    if (df < 2.1 and two_sided > 0.5) or y > 0.05 + a:
        x = normal_quantile(q)
        y = x * x
        if df < 5.0:
            c += 0.3 * (df - 4.5) * (x + 0.6)
        c = (((0.05 * d * x - 5.0) * x - 7.0) * x - 2.0) * x + b + c
        y = (((((0.4 * y + 6.3) * y + 36.0) * y + 94.5) / c - y - 3.0) / b + 1.0) * x
        y = math.expm1(a * y * y)
    elif y > 0.0:
        y = (
            (
                1.0 / (((df + 6.0) / (df * y) - 0.089 * d - 0.822) * (df + 2.0) * 3.0)
                + 0.5 / (df + 4.0)
            )
            * y
            - 1.0
        ) * (df + 1.0) / (df + 2.0) + 1.0 / y
    if not (y > 0.0 and math.isfinite(y)):
        return abs(normal_quantile(q))
    return math.sqrt(df * y)


def _solve_upper(q: float, df: float) -> float:
    """Return ``t >= 0`` with ``P(T > t) = q`` for ``0 < q <= 1/2``."""
    centre_target = 0.5 - q  # exact when q >= 1/4 (Sterbenz); used only then
    use_centre = q > 0.25
    t = _upper_tail_start(q, df)
    for _ in range(_MAX_NEWTON):
        centre, tail = _halves(t, df)
        density = _pdf(t, df)
        if use_centre:
            step = (centre - centre_target) / density
        else:
            # Newton on log(tail): d/dt log tail = -density / tail.
            step = tail * (math.log(q) - math.log(tail)) / density
        new_t = t - step
        if new_t <= 0.0:  # never leave the half line; halve towards zero instead
            new_t = 0.5 * t
        if abs(new_t - t) <= 4.0 * _EPS * abs(new_t):
            return new_t
        t = new_t
    return t


def t_quantile(p: float, df: float) -> float:
    """Return ``t`` with ``P(T <= t) = p`` (Student's t, ``df >= 1``, ``0 < p < 1``).

    ``df`` may be fractional or ``math.inf`` (the normal quantile).
    """
    _check_df(df)
    if not 0.0 < p < 1.0:
        msg = f"p must lie in (0, 1), got {p!r}"
        raise ValueError(msg)
    if math.isinf(df):
        return normal_quantile(p)
    if p == 0.5:
        return 0.0
    # By symmetry work with the upper tail q = P(T > |t|) <= 1/2; for p > 1/2,
    # 1 - p is exact (Sterbenz), and for p < 1/2 q is p itself.
    sign = 1.0 if p > 0.5 else -1.0
    q = 1.0 - p if p > 0.5 else p
    if df == 1.0:
        # Cauchy: tail(t) = atan(1/t)/pi; the centre form avoids tan near pi/2.
        centre = 0.5 - q  # exact when q >= 1/4
        t = 1.0 / math.tan(math.pi * q) if q < 0.25 else math.tan(math.pi * centre)
    elif df == 2.0:
        # t = (2p - 1) / sqrt(2 p (1 - p)); every factor is exact.
        t = (1.0 - 2.0 * q) / math.sqrt(2.0 * q * (1.0 - q))
    else:
        t = _solve_upper(q, df)
    return sign * t


@functools.lru_cache(maxsize=1024)
def two_sided_critical(confidence_level: float, df: int) -> float:
    """Return the critical value of a two-sided ``confidence_level`` t interval.

    That is ``t_quantile(0.5 + confidence_level / 2, df)``; memoised, since the
    daemon asks for the same (level, window size) pair on every evaluation.
    """
    if not 0.0 < confidence_level < 1.0:
        msg = f"confidence_level must lie in (0, 1), got {confidence_level!r}"
        raise ValueError(msg)
    return t_quantile(0.5 + 0.5 * confidence_level, df)
