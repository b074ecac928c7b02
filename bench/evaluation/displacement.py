"""Likelihood displacement separated from quality: what training on pairs does to log π(chosen) and log π(rejected)
beyond the drift any policy that moves toward higher gold shows on text of that quality and length.

The confound (issue 25): chosen completions are selected to be better (and rejected ones worse, often longer), so a
policy that merely moves toward higher gold raises chosen and lowers rejected relative to fresh π_ref samples, whether
or not it trained on pairs (PPO, which never sees a pair, shows the same raw signature). The control here is a
**regression adjustment**, not stratified π_ref sampling: pool the chosen, rejected and control completions (control
= fresh π_ref samples on test prompts) and fit, by least squares,

    Δlog π_i = a + b_c·[chosen] + b_r·[rejected] + g·gold_i + l·length_i + w·[well-formed]_i + e_i

so b_c and b_r are the chosen / rejected displacement *at equal gold, length and well-formedness* and
b_c − b_r the adjusted chosen − rejected effect. Why regression rather than stratified sampling: the pairs' gold and
length reach the tails of π_ref's distribution (a rejected four-clause review, a chosen one-word verdict), where
matched π_ref samples are rare — stratification would need many times the control draws to fill those cells, while
the regression uses every control sample and states its assumption (Δlog π linear in the covariates) openly. The
same fit is done per sequence (Σ_t) and per token (Σ_t / length): the two disagree in sign when a policy shortens.

Intervals: the coefficient is a fixed linear map of the outcomes, c = Σ_i w_i y_i (the design — pairs, control
set and their covariates — is the same for every seed), so each *unit* u (a pair's two completions, or one control
completion) gets the influence value c + U·Σ_{i∈u} w_i e_i, whose mean over units is c (OLS residuals are
orthogonal to the design). A run's interval is the one uncertainty model over those units; a setting's stacks its
seeds' [seeds, units] matrices into `crossed.crossed_ci` (seed part + shared-units part), as for every metric.

CHES (Razin et al. 2024, "Unintentional unalignment", Def. 2): with h_{x,y} = Σ_k h(x, y_<k) the sum of the
model's last hidden states at the positions that predict y's tokens, CHES(x, y+, y−) = ⟨h+, h−⟩ − ‖h+‖²; its
length-normalised variant uses h/|y|. Pairs with high CHES are those whose preferred completion's likelihood falls
most under DPO (their Theorem 1 and Fig. 2); computed with π_ref, before any training.
"""

from __future__ import annotations

import math

import numpy as np

COVARIATES = ("gold", "length", "well_formed")


def design(group: np.ndarray, covariates: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """[N, K] design: intercept, chosen and rejected indicators (control is the base level), covariates that vary
    (a constant covariate — e.g. every completion well-formed — is dropped: it is collinear with the intercept)."""
    cols, names = [np.ones(len(group)), (group == "chosen").astype(float), (group == "rejected").astype(float)], \
        ["intercept", "chosen", "rejected"]
    for name, x in covariates.items():
        x = np.asarray(x, dtype=float)
        if np.isfinite(x).all() and np.ptp(x) > 0:
            cols.append(x)
            names.append(name)
    return np.column_stack(cols), names


def contrast_weights(x: np.ndarray, names: list[str], contrast: dict[str, float]) -> np.ndarray:
    """w [N] with contrastᵀ·β̂ = wᵀy for OLS β̂ = (XᵀX)⁻¹Xᵀy."""
    c = np.array([contrast.get(n, 0.0) for n in names])
    return np.linalg.lstsq(x.T @ x, c, rcond=None)[0] @ x.T


def adjusted_units(y, group, covariates: dict[str, np.ndarray], unit, contrast: dict[str, float]
                   ) -> tuple[float, np.ndarray, np.ndarray]:
    """(adjusted contrast, unit ids, influence value per unit): the contrast of the OLS fit above (e.g.
    {"chosen": 1, "rejected": -1}) and per unit c + U·Σ_{i∈u} w_i e_i (mean over units = c)."""
    y = np.asarray(y, dtype=float)
    group = np.asarray(group)
    x, names = design(group, covariates)
    w = contrast_weights(x, names, contrast)
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    resid = y - x @ beta
    c = float(w @ y)
    units, inverse = np.unique(np.asarray(unit), return_inverse=True)
    infl = np.zeros(len(units))
    np.add.at(infl, inverse, w * resid)
    return c, units, c + len(units) * infl


CONTRASTS = {"chosen_minus_rejected": {"chosen": 1.0, "rejected": -1.0},
             "chosen_vs_control": {"chosen": 1.0}, "rejected_vs_control": {"rejected": 1.0}}


def raw_units(y, group, unit, contrast: dict[str, float]) -> tuple[float, np.ndarray, np.ndarray]:
    """The unadjusted contrast of group means with its influence values (same unit convention): for chosen −
    rejected, per pair Δ_c − Δ_r; against the control, the chosen mean minus the control mean."""
    y, group, unit = np.asarray(y, dtype=float), np.asarray(group), np.asarray(unit)
    x = np.column_stack([np.ones(len(y)), (group == "chosen").astype(float), (group == "rejected").astype(float)])
    w = contrast_weights(x, ["intercept", "chosen", "rejected"], contrast)
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    resid = y - x @ beta
    c = float(w @ y)
    units, inverse = np.unique(unit, return_inverse=True)
    infl = np.zeros(len(units))
    np.add.at(infl, inverse, w * resid)
    return c, units, c + len(units) * infl


def displacement_readings(table, split: str) -> dict[str, tuple[float, np.ndarray, np.ndarray]]:
    """For one split of a pair_drift table (pandas; split ∈ heldout | train, pooled with the control rows):
    {"<raw|adjusted>_<contrast>_<seq|token>": (value, unit ids, influence values)}."""
    sub = table[(table["split"] == split) | (table["split"] == "control")]
    unit = sub["split"].astype(str) + ":" + sub["unit"].astype(str)
    cov = {k: sub[k].to_numpy(dtype=float) for k in COVARIATES if k in sub.columns}
    out = {}
    for scale, col in (("seq", "delta"), ("token", "delta_per_token")):
        y = sub[col].to_numpy(dtype=float)
        for name, contrast in CONTRASTS.items():
            out[f"raw_{name}_{scale}"] = raw_units(y, sub["group"].to_numpy(), unit.to_numpy(), contrast)
            out[f"adjusted_{name}_{scale}"] = adjusted_units(y, sub["group"].to_numpy(), cov, unit.to_numpy(),
                                                             contrast)
    return out


def rank_corr(x, y) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN with fewer than 3 finite pairs."""
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan
    return float(stats.spearmanr(x[ok], y[ok]).statistic)


def ches(h_chosen: np.ndarray, h_rejected: np.ndarray, len_chosen=None, len_rejected=None) -> np.ndarray:
    """CHES per pair from summed hidden states [N, D] (Razin et al. 2024, Def. 2); with lengths, the
    length-normalised variant (each sum divided by its completion's length)."""
    hc, hr = np.asarray(h_chosen, dtype=float), np.asarray(h_rejected, dtype=float)
    if len_chosen is not None:
        hc = hc / np.maximum(np.asarray(len_chosen, dtype=float), 1)[:, None]
        hr = hr / np.maximum(np.asarray(len_rejected, dtype=float), 1)[:, None]
    return (hc * hr).sum(-1) - (hc * hc).sum(-1)


def summed_hidden(model, tokenizer, prompts: list[str], completions: list[str], batch_size: int = 128
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(Σ of the last hidden state over the positions that predict the completion's tokens [N, D], lengths [N])."""
    import torch

    from bench.modeling import completion_batch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums, lens = [], []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            b = completion_batch(tokenizer, prompts[start:start + batch_size], completions[start:start + batch_size],
                                 device=device)
            out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], output_hidden_states=True)
            h = out.hidden_states[-1][:, :-1].float()            # position t predicts token t + 1
            mask = b["completion_mask"][:, 1:].float()
            sums.append((h * mask.unsqueeze(-1)).sum(1).cpu().numpy())
            lens.append(mask.sum(1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(sums).astype(np.float64), np.concatenate(lens).astype(np.float64)
