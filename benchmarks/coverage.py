"""The real check of the one uncertainty model: coverage of 3- and 5-seed intervals on the default world (issue 21).

    # 84 short runs (sft, dpo, ipo, simpo, cdpo, orpo × seeds 0-13 at suites/controlled.toml's settings), once:
    nohup bench run suites/controlled.toml --set 'suite.seeds=[0,1,2,3,4,5,6,7,8,9,10,11,12,13]' \
        --only sft,dpo,ipo,simpo,cdpo,orpo --results results/coverage-runs --no-report > coverage-run.log 2>&1 &
    python benchmarks/coverage.py results/coverage-runs/controlled [-o benchmarks/results/coverage.json]

Truth: the mean over all N seeds of each setting (or paired difference) on the suite's fixed test prompts and
reference draws — except sft's win rate, whose truth is known: 0.5 (π_ref against itself, over prompts and draws).
Every n-subset of the N seeds (n = 3: all of them; n = 5: a fixed random sample) gives an interval; coverage is the
share that contains the truth. Finite-truth correction: the subset is drawn without replacement from the N seeds
the truth averages, so its mean's distance to the truth has variance (1 − n/N)·σ²/n, not σ²/n; the seed part of
every interval is shrunk by sqrt(1 − n/N) before it is compared (the Cochran 1977 finite-population correction).

Reported per quantity and n:
  reported       the interval the report and summary.csv show (seed part, corrected, + the shared prompt/draw
                 part). Against a truth that holds the prompts and draws fixed it is conservative by construction
                 (the shared part is there for the population of prompts, which this truth does not vary over);
                 sft's 0.5 is the one truth that does, and tests the shared part as well.
  seed_path      the seed-only t interval over the n seed values (corrected): the path `bench check` and the
                 baselines' comparisons use, and the seed part of `reported`.
  old_*          the previous model's intervals (pigeonhole percentile bootstrap; seed-only percentile bootstrap,
                 the old baselines'), same correction, on up to 200 subsets: for the record.
Subsets overlap (N = 14 seeds), so these coverages are not binomial proportions: their uncertainty is larger than
sqrt(p(1−p)/subsets) suggests; `jackknife_se` (leave one seed out) gives it for the seed path. Heavy-tailed seeds (seeds that left the language) are flagged with their values.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import numpy as np

from bench.evaluation.crossed import _t_ppf, crossed_bootstrap_ci, crossed_components
from bench.evaluation.uncertainty import bounds_of, seed_key
from bench.results import from_results

ALGORITHMS = ("sft", "dpo", "ipo", "simpo", "cdpo", "orpo")  # --algorithms picks others
METRICS = ("win_rate", "gold_reward", "kl")
SIZES = (3, 5)
MAX_SUBSETS = 2000
OLD_SUBSETS = 200


def subsets(n_total: int, n: int, rng) -> list[tuple[int, ...]]:
    every = list(itertools.combinations(range(n_total), n))
    if len(every) <= MAX_SUBSETS:
        return every
    return [every[i] for i in sorted(rng.choice(len(every), MAX_SUBSETS, replace=False))]


def half_widths(x: np.ndarray, fpc: float) -> tuple[float, float, float, float]:
    """(mean, reported half-width, corrected reported half-width, corrected seed-path half-width) of x [n, P, K]."""
    c = crossed_components(x)
    t_seed = _t_ppf(0.975, c.seed_df)
    t_shared = _t_ppf(0.975, c.shared_df) if c.shared_var > 0 else 0.0
    reported = math.sqrt(t_seed ** 2 * c.seed_var + t_shared ** 2 * c.shared_var)
    corrected = math.sqrt(t_seed ** 2 * fpc ** 2 * c.seed_var + t_shared ** 2 * c.shared_var)
    means = x.mean(axis=(1, 2))
    seed_path = t_seed * fpc * float(means.std(ddof=1)) / math.sqrt(len(means))
    return c.mean, reported, corrected, seed_path


def old_hits(x: np.ndarray, truth: float, fpc: float, bounds, seed: int) -> tuple[bool, bool]:
    """Whether the old reported (pigeonhole) and old seed-only percentile intervals, corrected, cover `truth`."""
    out = []
    for data in (x, x.mean(axis=(1, 2))[:, None]):
        mean, lo, hi = crossed_bootstrap_ci(data, n_boot=1000, seed=seed, bounds=bounds)
        m = float(data.mean())
        out.append(m - fpc * (m - lo) <= truth <= m + fpc * (hi - m))
    return out[0], out[1]


def seed_path_coverage(values: np.ndarray, n: int) -> float:
    """Coverage of the seed-only t interval (corrected) of the mean of `values` over every n-subset of them."""
    n_total = len(values)
    fpc = math.sqrt(1 - n / n_total)
    subs = np.array(list(itertools.combinations(range(n_total), n)))
    x = values[subs]
    hw = _t_ppf(0.975, n - 1) * fpc * x.std(axis=1, ddof=1) / math.sqrt(n)
    return float(np.mean(np.abs(x.mean(axis=1) - values.mean()) <= hw))


def jackknife_se(values: np.ndarray, n: int) -> float:
    """Leave-one-seed-out jackknife standard error of `seed_path_coverage`: the subsets overlap, so the coverage
    of N seeds is one draw of a statistic of those N seeds, with this much seed-to-seed uncertainty."""
    n_total = len(values)
    if n_total - 1 <= n:
        return math.nan
    c = np.array([seed_path_coverage(np.delete(values, i), n) for i in range(n_total)])
    return float(math.sqrt((n_total - 1) / n_total * ((c - c.mean()) ** 2).sum()))


def study(matrices: dict[tuple, np.ndarray], metric: str, *, truth: float | None, rng, bounds) -> dict:
    keys = sorted(matrices, key=str)
    x_all = np.stack([matrices[k] for k in keys])
    n_total = len(keys)
    truth = float(x_all.mean()) if truth is None else truth
    out = {"seeds": n_total, "truth": truth, "seed_values": [float(v) for v in x_all.mean(axis=(1, 2))],
           "seed_ids": [k[-1] for k in keys]}  # the training seed of each value (keys sort as text: 0, 1, 10, ...)
    for n in SIZES:
        fpc = math.sqrt(1 - n / n_total)
        rows = []
        for j, sub in enumerate(subsets(n_total, n, rng)):
            x = x_all[list(sub)]
            mean, rep, rep_c, seed_c = half_widths(x, fpc)
            rows.append((abs(mean - truth) <= rep_c, abs(mean - truth) <= seed_c, rep, seed_c / fpc, sub))
        hits = np.array([(a, b) for a, b, *_ in rows], dtype=float)
        pick = sorted(rng.choice(len(rows), min(OLD_SUBSETS, len(rows)), replace=False))  # a random sample: the
        old = [old_hits(x_all[list(rows[i][4])], truth, fpc, bounds, seed=j)  # subsets come in lexicographic order
               for j, i in enumerate(pick)]
        out[f"n{n}"] = {
            "subsets": len(rows),
            "reported": {"coverage": float(hits[:, 0].mean()), "mean_half_width": float(np.mean([r[2] for r in rows]))},
            "seed_path": {"coverage": float(hits[:, 1].mean()), "mean_half_width": float(np.mean([r[3] for r in rows])),
                          "jackknife_se": jackknife_se(x_all.mean(axis=(1, 2)), n)},
            "old_reported_coverage": float(np.mean([o[0] for o in old])),
            "old_seed_path_coverage": float(np.mean([o[1] for o in old])),
            "old_subsets": len(old),
        }
    return out


def known_truth_study(matrices: dict[tuple, np.ndarray], truth: float, rng) -> dict:
    """sft's win rate against its known population value 0.5: no finite-truth correction (the truth is not the
    seeds' mean), and the shared part is tested too (the population of prompts and draws is what 0.5 averages)."""
    keys = sorted(matrices, key=str)
    x_all = np.stack([matrices[k] for k in keys])
    out = {"truth": truth, "truth_kind": "known (π_ref against itself)", "seeds": len(keys),
           "all_seeds_mean": float(x_all.mean())}
    c_all = crossed_components(x_all)
    out["all_seeds_interval"] = [float(c_all.mean - c_all.half_width()), float(c_all.mean + c_all.half_width())]
    out["all_seeds_parts"] = {"seed_var": c_all.seed_var, "shared_var": c_all.shared_var}
    for n in SIZES:
        rows = []
        for sub in subsets(len(keys), n, rng):
            c = crossed_components(x_all[list(sub)])
            hw = c.half_width()
            rows.append((abs(c.mean - truth) <= hw, hw))
        out[f"n{n}"] = {"subsets": len(rows), "reported": {"coverage": float(np.mean([r[0] for r in rows])),
                                                          "mean_half_width": float(np.mean([r[1] for r in rows]))}}
    return out


def failure_aware_study(matrices: dict[tuple, np.ndarray], off: dict[tuple, bool], rng) -> dict:
    """The failure-aware reading (bench/evaluation/language.py) scored on every n-subset of the N seeds:

    rate      the Clopper–Pearson interval of k/n (seeds that left the language) against the N seeds' rate K/N;
    stayed    the one model's interval over the subset's seeds that stayed (when >= 2 did) against the mean of all
              N − K that stayed, its seed part shrunk by sqrt(1 − m/(N − K)) (m of them drawn without replacement).
    """
    from bench.evaluation.language import clopper_pearson

    keys = sorted(matrices, key=str)
    x_all = np.stack([matrices[k] for k in keys])
    flags = np.array([bool(off.get(k, False)) for k in keys])
    n_total, n_off = len(keys), int(flags.sum())
    stayed_all = x_all[~flags]
    truth_rate, truth_stayed = n_off / n_total, float(stayed_all.mean()) if len(stayed_all) else math.nan
    out = {"seeds": n_total, "left": n_off, "left_seed_ids": [k[-1] for k, f in zip(keys, flags) if f],
           "truth_rate": truth_rate, "truth_stayed_mean": truth_stayed}
    for n in SIZES:
        rate_hits, stayed_hits, widths = [], [], []
        for sub in subsets(n_total, n, rng):
            sub = list(sub)
            k = int(flags[sub].sum())
            lo, hi = clopper_pearson(k, n)
            rate_hits.append(lo <= truth_rate <= hi)
            kept = [i for i in sub if not flags[i]]
            if len(kept) >= 2 and n_total - n_off > len(kept):
                mean, reported, corrected, _ = half_widths(x_all[kept], math.sqrt(1 - len(kept) / (n_total - n_off)))
                stayed_hits.append(abs(mean - truth_stayed) <= corrected)
                widths.append(reported)
        out[f"n{n}"] = {"rate_coverage": float(np.mean(rate_hits)), "subsets": len(rate_hits),
                        "stayed_coverage": float(np.mean(stayed_hits)) if stayed_hits else math.nan,
                        "stayed_subsets": len(stayed_hits),
                        "stayed_mean_half_width": float(np.mean(widths)) if widths else math.nan}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=Path("benchmarks/results/coverage.json"))
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS),
                        help="comma-separated algorithms of the results to study (those absent are skipped)")
    parser.add_argument("--failure-aware-into", type=Path,
                        help="add only the failure-aware block to this committed result (the rest is not recomputed)")
    args = parser.parse_args()
    algorithms = [a for a in args.algorithms.split(",") if a]
    import pandas as pd

    from bench.io import read_json
    from bench.results import summary_frame

    frame = summary_frame(args.results, intervals=False)
    unc = from_results(args.results, frame)
    by_algo = {a: [s for s in unc.settings if frame.loc[frame["run_id"].isin(unc.settings[s]), "algorithm"].eq(a).all()]
               for a in algorithms}
    settings = {a: s[0] for a, s in by_algo.items() if s}
    rng = np.random.default_rng(21)
    done = frame[frame["status"] == "finished"]
    config = read_json(next((args.results / "runs").glob("*/config.json")))
    report: dict = {
        "results": str(args.results), "suite": read_json(args.results / "suite.json").get("hash"),
        "world_key": config.get("world_key"), "world": config.get("world"),
        "git": (config.get("provenance") or {}).get("git"),
        "finite_truth_correction": "seed part × sqrt(1 − n/N)",
        "grammatical": {a: {int(r["seed"]): float(r["grammatical_fraction"]) for _, r in done[done["algorithm"] == a]
                            .iterrows()} for a in settings},
        "settings": {}, "differences": {},
    }
    world_json = args.results / "world.json"  # written at the end of `bench run`: the world's build record
    if world_json.is_file():
        report["world_format"] = read_json(world_json).get("format")
    from bench.columns import sorted_runs
    from bench.evaluation.language import off_language

    runs = sorted_runs(frame)
    off_ids = set(runs.loc[off_language(runs), "run_id"])
    failure_aware = {}
    fa_rng = np.random.default_rng(1934)  # its own stream: the other studies' subsets stay as committed
    for a, s in settings.items():
        rids = [r for r in unc.settings[s] if unc.runs[r]["metrics"].get("status") == "finished"]

        off = {seed_key(unc.runs[r]["config"]): r in off_ids for r in rids}
        failure_aware[a] = {m: failure_aware_study(unc.seed_matrices(s, m), off, fa_rng) for m in METRICS
                            if len(unc.seed_matrices(s, m)) >= 6}
    if args.failure_aware_into:
        committed = json.loads(args.failure_aware_into.read_text())
        committed["failure_aware"] = failure_aware
        args.failure_aware_into.write_text(json.dumps(committed, indent=1, default=float) + "\n")
        print(failure_aware_markdown(committed, "win_rate"))
        print(f"\nwritten: {args.failure_aware_into} (failure_aware only)")
        return
    report["failure_aware"] = failure_aware
    for a, s in settings.items():
        for m in METRICS:
            mats = unc.seed_matrices(s, m)
            if len(mats) < 6:
                continue
            report["settings"].setdefault(a, {})[m] = study(mats, m, truth=None, rng=rng, bounds=bounds_of(m))
    if "sft" in settings:
        report["sft_win_rate_vs_0.5"] = known_truth_study(unc.seed_matrices(settings["sft"], "win_rate"), 0.5, rng)
    for a, b in itertools.combinations(settings, 2):
        for m in METRICS:
            ma, mb = unc.seed_matrices(settings[a], m), unc.seed_matrices(settings[b], m)
            keys = [k for k in ma if k in mb and ma[k].shape == mb[k].shape]
            if len(keys) < 6:
                continue
            diffs = {k: ma[k] - mb[k] for k in keys}
            low, high = bounds_of(m)
            report["differences"].setdefault(f"{a} - {b}", {})[m] = study(diffs, m, truth=None, rng=rng,
                                                                          bounds=(low - high, high - low))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    rows = []
    for kind, block in (("setting", report["settings"]), ("difference", report["differences"])):
        for name, metrics in block.items():
            for m, r in metrics.items():
                for n in SIZES:
                    c = r[f"n{n}"]
                    rows.append({"kind": kind, "quantity": name, "metric": m, "seeds": n,
                                 "reported": c["reported"]["coverage"], "hw": c["reported"]["mean_half_width"],
                                 "seed_path": c["seed_path"]["coverage"], "jk_se": c["seed_path"]["jackknife_se"],
                                 "seed_hw": c["seed_path"]["mean_half_width"],
                                 "old": c["old_reported_coverage"], "old_seed": c["old_seed_path_coverage"]})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if "sft_win_rate_vs_0.5" in report:
        k = report["sft_win_rate_vs_0.5"]
        print(f"\nsft win rate vs its known 0.5: {k['seeds']} seeds read {k['all_seeds_mean']:.4f} "
              f"[{k['all_seeds_interval'][0]:.4f}, {k['all_seeds_interval'][1]:.4f}]; 3-seed intervals cover 0.5 "
              f"{k['n3']['reported']['coverage']:.1%}, 5-seed {k['n5']['reported']['coverage']:.1%}")
    print("\n" + markdown(report, "win_rate"))
    print("\n" + failure_aware_markdown(report, "win_rate"))
    print(f"\nwritten: {args.out}")


def markdown(report: dict, metric: str) -> str:
    """The README's table: coverage (and mean half-width) of 3- and 5-seed intervals of `metric`."""
    lines = [f"| {metric} | seeds | reported interval: coverage (mean half-width) | seed path (`bench check`) ± jackknife "
             "SE | old crossed bootstrap | old seed-only bootstrap |", "|---|---|---|---|---|---|"]
    for block in ("settings", "differences"):
        for name, metrics in report[block].items():
            r = metrics.get(metric)
            if r is None:
                continue
            for n in SIZES:
                c = r[f"n{n}"]
                se = c["seed_path"].get("jackknife_se")
                lines.append(f"| {name} | {n} | {c['reported']['coverage']:.1%} ({c['reported']['mean_half_width']:.3f}) "
                             f"| {c['seed_path']['coverage']:.1%}" + (f" ± {se:.1%}" if se == se else "") +
                             f" | {c['old_reported_coverage']:.1%} | {c['old_seed_path_coverage']:.1%} |")
    return "\n".join(lines)


def failure_aware_markdown(report: dict, metric: str) -> str:
    """The guide's table: per algorithm, the seeds that left the language and the coverage of the failure-aware
    reading at 3 and 5 seeds, beside the plain interval's coverage of the mean over all seeds."""
    lines = [f"| {metric} | left the language (of N) | seeds | all-seed mean: coverage | failure rate (Clopper–Pearson): "
             "coverage | mean over the seeds that stayed: coverage (mean half-width) |", "|---|---|---|---|---|---|"]
    for name, metrics in (report.get("failure_aware") or {}).items():
        r = metrics.get(metric)
        if r is None:
            continue
        for n in SIZES:
            c = r[f"n{n}"]
            plain = report["settings"].get(name, {}).get(metric, {}).get(f"n{n}", {}).get("reported", {})
            lines.append(f"| {name} | {r['left']} of {r['seeds']} | {n} | {plain.get('coverage', math.nan):.1%} | "
                         f"{c['rate_coverage']:.1%} | {c['stayed_coverage']:.1%} ({c['stayed_mean_half_width']:.3f}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
