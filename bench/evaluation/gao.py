"""Over-optimisation's functional forms (Gao, Schulman & Hilton 2022, "Scaling laws for reward model
over-optimization", Eqs. 1–2): with d = √KL(π‖π_ref), the gold reward gained over π_ref follows

    best-of-n:  R(d) = d·(α − β·d)          peak at d* = α / (2β)
    RL:         R(d) = d·(α − β·log d)      peak at d* = exp(α/β − 1)

Both are linear in (α, β) (regressors d and −d², or d and −d·log d, no intercept: R(0) = 0), so each is an
ordinary least-squares fit. Per run: fit its curve points through training; per setting: fit each seed and give
α, β and d* the one uncertainty model's seed-only interval (t over seed values, crossed.crossed_ci on
[seeds, 1]: the prompts are shared by every point of a run, so the fitted coefficients are one number per seed).
Fit quality is R² of the gain (1 − SSE / Σ(R − R̄)²); with the same number of parameters the form with the
smaller SSE fits better. A d* outside the observed range is reported as such (an extrapolated peak).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.evaluation.crossed import crossed_ci

FORMS = ("bon", "rl")  # d(α − βd), d(α − β log d)


@dataclass(frozen=True)
class Fit:
    form: str
    alpha: float
    beta: float
    r2: float
    sse: float
    peak_d: float           # √KL of the fitted maximum (NaN when the fit has none: β ≤ 0)
    peak_observed: bool     # the peak lies within the observed d range
    points: int


def _regressors(d: np.ndarray, form: str) -> np.ndarray:
    if form == "bon":
        return np.column_stack([d, -d * d])
    with np.errstate(divide="ignore", invalid="ignore"):
        dlogd = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
    return np.column_stack([d, -dlogd])


def fit_form(kl, gain, form: str) -> Fit:
    """Least-squares fit of gain = d(α − β·d) ("bon") or d(α − β·log d) ("rl"), d = √max(KL, 0)."""
    kl, gain = np.asarray(kl, dtype=float), np.asarray(gain, dtype=float)
    ok = np.isfinite(kl) & np.isfinite(gain)
    d, y = np.sqrt(np.maximum(kl[ok], 0.0)), gain[ok]
    if ok.sum() < 3 or not (d > 0).any():
        return Fit(form, math.nan, math.nan, math.nan, math.nan, math.nan, False, int(ok.sum()))
    x = _regressors(d, form)
    (alpha, beta), *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ np.array([alpha, beta])
    sse = float(resid @ resid)
    sst = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - sse / sst if sst > 0 else math.nan
    peak = peak_of(form, float(alpha), float(beta))
    observed = bool(math.isfinite(peak) and d.min() <= peak <= d.max())
    return Fit(form, float(alpha), float(beta), float(r2), sse, peak, observed, int(ok.sum()))


def peak_of(form: str, alpha: float, beta: float) -> float:
    if not beta > 0:
        return math.nan
    if form == "bon":
        return alpha / (2 * beta)
    z = alpha / beta - 1
    return math.exp(z) if z < 50 else math.inf


def better_form(fits: dict[str, Fit]) -> str | None:
    """The form with the smaller residual sum of squares (both have two parameters); None when either failed."""
    a, b = fits.get("bon"), fits.get("rl")
    if a is None or b is None or not (math.isfinite(a.sse) and math.isfinite(b.sse)):
        return None
    return "bon" if a.sse <= b.sse else "rl"


def fit_seeds(curves: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, dict]:
    """Per form, over seeds (each a (KL, gain) curve): α, β, d* and R² as (mean, lo, hi) with the seed-only t
    interval, the per-seed fits, and how many seeds preferred each form (summed SSE decides `better`)."""
    out: dict[str, dict] = {}
    per_form = {form: [fit_form(kl, g, form) for kl, g in curves] for form in FORMS}
    for form, fits in per_form.items():
        row: dict = {"fits": fits}
        for name in ("alpha", "beta", "peak_d", "r2"):
            v = np.array([getattr(f, name) for f in fits], dtype=float)
            v = v[np.isfinite(v)]
            row[name] = crossed_ci(v[:, None]) if v.size else (math.nan, math.nan, math.nan)
        row["sse"] = float(np.nansum([f.sse for f in fits]))
        out[form] = row
    out["better"] = None if not curves else ("bon" if out["bon"]["sse"] <= out["rl"]["sse"] else "rl")
    out["seeds_preferring"] = {form: sum(better_form({"bon": a, "rl": b}) == form
                                         for a, b in zip(per_form["bon"], per_form["rl"])) for form in FORMS}
    return out


def run_fit_metrics(rows: list[dict]) -> dict[str, float | str]:
    """A run's own fits through training, from its held-out generation curve rows (curves.csv: `kl_tokenwise`,
    `gold_reward`, `reference_gold_reward`): gao_<form>_alpha / _beta / _peak_sqrt_kl / _r2 for both forms and
    `gao_better` (the form with the smaller SSE). Empty when fewer than 3 generation points."""
    def number(v) -> float:
        try:
            return float(v)  # numpy / torch scalars in memory, strings from a CSV
        except (TypeError, ValueError):
            return math.nan

    keys = ("kl_tokenwise", "gold_reward", "reference_gold_reward")
    pts = [(number(r["kl_tokenwise"]), number(r["gold_reward"]) - number(r["reference_gold_reward"]))
           for r in rows if r.get("split", "heldout") == "heldout" and not isinstance(r.get(keys[0]), bool)
           and all(math.isfinite(number(r.get(k))) for k in keys)]
    if len(pts) < 3:
        return {}
    kl, gain = np.array(pts).T
    fits = {form: fit_form(kl, gain, form) for form in FORMS}
    out: dict[str, float | str] = {}
    for form, f in fits.items():
        out.update({f"gao_{form}_alpha": f.alpha, f"gao_{form}_beta": f.beta,
                    f"gao_{form}_peak_sqrt_kl": f.peak_d, f"gao_{form}_r2": f.r2})
    better = better_form(fits)
    if better is not None:
        out["gao_better"] = better
    return out
