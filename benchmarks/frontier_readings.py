"""Issue 25's readings of a finished suite, from its results folder (no training): the limits' reach against the
runs' KL, per setting the frontier efficiency, the checkpoints' interval widths against the gaps between
algorithms, the Gao et al. (2022) fits, and the raw and quality-adjusted displacement on training and held-out
pairs (per sequence and per token), with PPO on the same pairs at matched KL.

    python benchmarks/frontier_readings.py results/controlled [--json out.json]

Every interval is the one uncertainty model (bench/evaluation/estimators.py crossed_ci): over a setting's seeds
and its shared units (prompts, pairs), t over seed values where a quantity is one number per seed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench.columns import setting_groups
from bench.evaluation.displacement import adjusted_units, displacement_readings
from bench.evaluation.crossed import crossed_ci
from bench.evaluation.frontier import efficiency_units, limit_reach
from bench.evaluation.gao import fit_seeds


def _read(run_dir: Path, name: str) -> pd.DataFrame | None:
    p = run_dir / name
    return pd.read_csv(p) if p.is_file() else None


def _fmt(t) -> str:
    m, lo, hi = t
    return f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]" if math.isfinite(m) else "n/a"


def checkpoint_widths(dirs: list[Path], prompts: int | None = None) -> pd.DataFrame:
    """Per generation point of a setting: gold and tokenwise KL as crossed intervals over [seeds, prompts]
    (the first `prompts` prompts only, to measure what fewer prompts would give)."""
    tables = [t for t in (_read(d, "curve_prompts.csv") for d in dirs) if t is not None]
    if not tables:
        return pd.DataFrame()
    points = sorted(set.intersection(*(set(t["point"]) for t in tables)))
    rows = []
    for p in points:
        row = {"point": p}
        for col in ("gold_reward", "kl_tokenwise"):
            x = np.stack([t.loc[t["point"] == p, col].to_numpy(float) for t in tables])
            x = x[:, :prompts] if prompts else x
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = crossed_ci(x)
            gain = x - np.stack([t.loc[t["point"] == p, "reference_gold"].to_numpy(float) for t in tables])[
                :, :x.shape[1]] if col == "gold_reward" else None
            if gain is not None:
                row["gain"] = float(gain.mean())
        rows.append(row)
    return pd.DataFrame(rows)


def gao(dirs: list[Path]) -> dict:
    curves = []
    for d in dirs:
        t = _read(d, "curves.csv")
        if t is None or "gold_reward" not in t.columns:
            continue
        t = t[(t["split"] == "heldout") & np.isfinite(pd.to_numeric(t["gold_reward"], errors="coerce"))]
        curves.append((t["kl_tokenwise"].to_numpy(float),
                       (t["gold_reward"] - t["reference_gold_reward"]).to_numpy(float)))
    return fit_seeds(curves) if curves else {}


def displacement(dirs: list[Path], split: str) -> dict[str, tuple]:
    """Setting-level raw and adjusted contrasts: each seed's influence values stacked [seeds, units]."""
    per_seed = [displacement_readings(t, split) for t in (_read(d, "pair_drift.csv") for d in dirs) if t is not None]
    out = {}
    for name in per_seed[0] if per_seed else []:
        units = [r[name][1] for r in per_seed]
        if any(len(u) != len(units[0]) or (u != units[0]).any() for u in units):
            continue
        out[name] = crossed_ci(np.stack([r[name][2] for r in per_seed]))
    return out


def tracked_effect(drift: pd.DataFrame, point: int, split: str) -> tuple[float, np.ndarray, np.ndarray]:
    """Adjusted chosen − rejected per sequence on the tracked pairs at one curve point (gold, length covariates)."""
    sub = drift[(drift["point"] == point) & ((drift["split"] == split) | (drift["split"] == "control"))]
    unit = (sub["split"].astype(str) + ":" + sub["unit"].astype(str)).to_numpy()
    return adjusted_units(sub["delta"].to_numpy(float), sub["group"].to_numpy(),
                          {"gold": sub["gold"].to_numpy(float), "length": sub["length"].to_numpy(float)}, unit,
                          {"chosen": 1.0, "rejected": -1.0})


def matched_kl(dirs_a: list[Path], dirs_ref: list[Path], split: str) -> dict:
    """Setting a's final adjusted chosen − rejected on the tracked pairs against the reference setting's (PPO) at
    the curve point whose tokenwise KL is nearest a's final KL, seed by seed (seed k of a with seed k of ref)."""
    a_vals, r_vals, a_kl, r_kl = [], [], [], []
    for da, dr in zip(dirs_a, dirs_ref):
        ca, cr = _read(da, "curves.csv"), _read(dr, "curves.csv")
        pa, pr = _read(da, "curve_pair_drift.csv"), _read(dr, "curve_pair_drift.csv")
        if any(x is None for x in (ca, cr, pa, pr)):
            continue
        ha = ca[ca["split"] == "heldout"].reset_index(drop=True)
        hr = cr[cr["split"] == "heldout"].reset_index(drop=True)
        last = int(pa["point"].max())
        kl = float(ha["kl_tokenwise"].dropna().iloc[-1])
        gen = hr[np.isfinite(pd.to_numeric(hr["kl_tokenwise"], errors="coerce"))]
        j = int((gen["kl_tokenwise"] - kl).abs().idxmin())
        a_vals.append(tracked_effect(pa, last, split)[2])
        r_vals.append(tracked_effect(pr, j, split)[2])
        a_kl.append(kl)
        r_kl.append(float(hr.loc[j, "kl_tokenwise"]))
    if not a_vals:
        return {}
    a, r = np.stack(a_vals), np.stack(r_vals)
    return {"a": crossed_ci(a), "ref": crossed_ci(r), "a_minus_ref": crossed_ci(a - r),
            "kl_a": float(np.mean(a_kl)), "kl_ref": float(np.mean(r_kl))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--reference", default="ppo", help="label of the never-trained-on-pairs reference")
    args = ap.parse_args(argv)
    summary = pd.read_csv(args.results / "summary.csv")
    summary = summary[summary["status"] == "finished"]
    limits = json.loads((args.results / "limits.json").read_text()) if (args.results / "limits.json").is_file() \
        else {}
    groups = setting_groups(summary)
    dirs = {s: [args.results / "runs" / r for r in sorted(ids, key=lambda r: str(summary.set_index("run_id")
                                                                                   .loc[r, "seed"]))]
            for s, ids in groups.items()}
    out: dict = {"settings": {}}
    curves_kl = []
    for ds in dirs.values():
        for d in ds:
            c = _read(d, "curves.csv")
            if c is not None and "kl_tokenwise" in c.columns:
                curves_kl += list(pd.to_numeric(c["kl_tokenwise"], errors="coerce").dropna())
    run_kl = max([0.0] + curves_kl + list(pd.to_numeric(summary["kl_tokenwise"], errors="coerce").dropna()))
    if limits:
        reach = limit_reach(limits)
        print(f"limits: m = {limits['samples_per_prompt']} samples x {limits['prompts']} prompts; valid to KL "
              f"{reach:.2f}; the runs reach KL {run_kl:.2f} (tokenwise, any checkpoint)")
        for r in limits.get("kl_optimal", []):
            print(f"  pi* beta={r['beta']:<5} KL {r['kl']:.2f} gold {r['gold_reward']:+.3f} ESS {r['ess_fraction']:.1%}"
                  f"{'' if r.get('valid', r['ess_fraction'] >= 0.1) else '  (not valid)'}")
        for r in limits.get("best_of_n", []):
            print(f"  best-of-{r['n']:<4} KL {r['kl']:.2f} gold {r['gold_reward']:+.3f}")
        out["limits"] = {"m": limits["samples_per_prompt"], "valid_to_kl": reach, "runs_reach_kl": run_kl}
    finals, widths64, widths_all = {}, [], []
    for setting, ds in dirs.items():
        rows = summary[summary["run_id"].isin(groups[setting])]
        rec: dict = {"seeds": len(ds)}
        print(f"\n== {setting} ({len(ds)} seeds)")
        for col in ("gold_reward", "kl_tokenwise", "frontier_efficiency", "frontier_efficiency_bon"):
            if col in rows.columns:
                v = pd.to_numeric(rows[col], errors="coerce")
                lo = rows.get(f"{col}_lo", pd.Series([np.nan])).iloc[0]
                hi = rows.get(f"{col}_hi", pd.Series([np.nan])).iloc[0]
                rec[col] = (float(v.mean()), float(lo), float(hi))
                print(f"  {col:<24} {_fmt(rec[col])}   seeds: {', '.join(f'{x:.3f}' for x in v)}")
        finals[setting] = rec.get("gold_reward", (math.nan,))[0]
        if limits:  # recomputed against the suite's limits.json (one limit for every run of the suite)
            for which, name in (("optimum", "pi*"), ("best_of_n", "best-of-n")):
                units = []
                for d in ds:
                    pp, m = _read(d, "per_prompt.csv"), json.loads((d / "metrics.json").read_text())
                    if pp is not None and "reference_gold" in pp.columns:
                        units.append(efficiency_units(pp["gold_reward"], pp["reference_gold"],
                                                      float(m["kl_tokenwise"]), limits, which))
                if units and np.isfinite(np.stack(units)).all():
                    rec[f"efficiency_{which}_suite_limits"] = crossed_ci(np.stack(units))
                    print(f"  efficiency vs {name:<9} (suite limits) {_fmt(rec[f'efficiency_{which}_suite_limits'])}"
                          f"   seeds: {', '.join(f'{u.mean():.3f}' for u in units)}")
                elif units:
                    print(f"  efficiency vs {name:<9} (suite limits) no valid limit at some seed's KL")
        w = checkpoint_widths(ds)
        if len(w):
            w64 = checkpoint_widths(ds, prompts=64)
            hw = (w["gold_reward_hi"] - w["gold_reward_lo"]) / 2
            hw64 = (w64["gold_reward_hi"] - w64["gold_reward_lo"]) / 2
            hk = (w["kl_tokenwise_hi"] - w["kl_tokenwise_lo"]) / 2
            widths_all += list(hw)
            widths64 += list(hw64)
            rec["checkpoints"] = w.to_dict("records")
            print(f"  checkpoints: gold half-width median {hw.median():.3f} (first 64 prompts: {hw64.median():.3f});"
                  f" KL half-width median {hk.median():.3f}; max jump between consecutive checkpoints "
                  f"{np.abs(np.diff(w['gold_reward'])).max():.3f}")
            for r in w.to_dict("records"):
                print(f"    point {int(r['point']):>2}: KL {r['kl_tokenwise']:.2f} [{r['kl_tokenwise_lo']:.2f}, "
                      f"{r['kl_tokenwise_hi']:.2f}]  gold {r['gold_reward']:+.3f} [{r['gold_reward_lo']:+.3f}, "
                      f"{r['gold_reward_hi']:+.3f}]")
        g = gao(ds)
        if g:
            for form in ("bon", "rl"):
                f = g[form]
                print(f"  Gao {form:<3}: alpha {_fmt(f['alpha'])} beta {_fmt(f['beta'])} peak sqrtKL "
                      f"{_fmt(f['peak_d'])} R2 {_fmt(f['r2'])}")
            print(f"  better form: {g['better']} (seeds preferring: {g['seeds_preferring']})")
            rec["gao"] = {form: {k: g[form][k] for k in ("alpha", "beta", "peak_d", "r2", "sse")} for form in
                          ("bon", "rl")} | {"better": g["better"]}
        for split in ("heldout", "train"):
            d = displacement(ds, split)
            rec[f"displacement_{split}"] = d
            for name in ("chosen_minus_rejected", "chosen_vs_control", "rejected_vs_control"):
                line = "  ".join(f"{kind[:3]} {scale}: {_fmt(d.get(f'{kind}_{name}_{scale}', (math.nan,) * 3))}"
                                 for kind in ("raw", "adjusted") for scale in ("seq", "token"))
                print(f"  {split:<7} {name:<22} {line}")
        ches = [json.loads((d / "metrics.json").read_text()) for d in ds if (d / "metrics.json").is_file()]
        for prefix in ("", "train_"):
            v = np.array([m.get(f"{prefix}ches_chosen_corr", np.nan) for m in ches], dtype=float)
            v_ln = np.array([m.get(f"{prefix}ches_ln_chosen_corr", np.nan) for m in ches], dtype=float)
            if np.isfinite(v).any():
                print(f"  {prefix or 'heldout_'}CHES vs chosen Δlogπ (Spearman, per seed): "
                      f"{', '.join(f'{x:+.2f}' for x in v)}; length-normalised vs per-token: "
                      f"{', '.join(f'{x:+.2f}' for x in v_ln)}")
                rec[f"{prefix}ches_corr"] = list(v)
        out["settings"][setting] = rec
    ref = [s for s in dirs if s.split(" ")[0] == args.reference]
    if ref:
        print(f"\n== trained-on-pairs vs {ref[0]} at matched KL (tracked pairs, adjusted chosen − rejected per "
              "sequence; gold and length covariates)")
        for setting, ds in dirs.items():
            if setting == ref[0]:
                continue
            for split in ("heldout", "train"):
                mk = matched_kl(ds, dirs[ref[0]], split)
                if mk:
                    print(f"  {setting:<20} {split:<7} at KL {mk['kl_a']:.2f}: {_fmt(mk['a'])};  {ref[0]} at KL "
                          f"{mk['kl_ref']:.2f}: {_fmt(mk['ref'])};  difference {_fmt(mk['a_minus_ref'])}")
                    out["settings"][setting][f"matched_{split}"] = mk
    trained = {s: v for s, v in finals.items() if math.isfinite(v)}
    gaps = [abs(a - b) for i, a in enumerate(trained.values()) for b in list(trained.values())[i + 1:]]
    if gaps and widths_all:
        print(f"\ncheckpoint gold half-width: median {np.median(widths_all):.3f} on all curve prompts, "
              f"{np.median(widths64):.3f} on the first 64; between-setting gaps of final gold: median "
              f"{np.median(gaps):.3f} (min {min(gaps):.3f}, max {max(gaps):.3f})")
        out["widths"] = {"all": float(np.median(widths_all)), "first64": float(np.median(widths64)),
                         "gap_median": float(np.median(gaps))}
    if args.json:
        args.json.write_text(json.dumps(out, default=lambda o: o.__dict__ if hasattr(o, "__dict__") else str(o),
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
