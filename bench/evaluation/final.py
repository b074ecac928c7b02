"""Final metrics of a run (metrics.json) and its samples (samples.jsonl). One code path for every algorithm.

Estimators (all documented in bench/evaluation/estimators.py):
- win_rate: P(judge(y_π) > judge(y_ref)) + ½P(tie): each prompt's policy sample against K = eval.reference_samples
  π_ref draws for that prompt; `win_rate_run_lo/_run_hi` is the 95% interval *within this run* (t over prompts,
  each with its reference draws); `tie_rate` the fraction of comparisons that tie;
- win_rate_lc: the length-controlled win rate (AlpacaEval 2's LC idea: a logistic regression of the preference
  on the length difference, read at equal length), `win_rate_length_slope` its length coefficient;
  win_rate_grammar / win_rate_sentiment: the parts of win_rate − ½ decided by grammar (one side or both
  ill-formed) and by sentiment (both well-formed), where the judge knows a grammar (bench/evaluation/win_parts.py);
- gold_reward: mean judge score of policy samples (`_run_lo/_run_hi`: over prompts);
- kl: Monte-Carlo k1 = mean over policy samples of Σ_t log π − log π_ref (t CI over prompts); kl_tokenwise: exact
  per-token KL along the sampled prefixes (same expectation, lower variance);
- drift (chosen/rejected/margin deltas): Σ_t log π(y|x) now minus at step 0 (= π_ref), mean over ALL held-out
  pairs (the curves track a fixed subset), and (`train_` prefix) over the fixed subset of training pairs;
  `chosen_fell_fraction`: fraction of held-out pairs whose chosen log-prob fell (Razin et al. 2024);
  `control_logp_delta(_per_token)`: the same change on fresh π_ref samples (the control set), i.e. global drift,
  and `chosen_vs_control_per_token` = Δ chosen per token − Δ control per token (displacement net of drift);
- per-prompt and per-pair values are written to per_prompt.csv / per_pair.csv in the run folder: the units of
  the suite-level interval (bench/evaluation/uncertainty.py);
- pref_accuracy: the algorithm's implicit reward ranks chosen above rejected on all held-out pairs (ties ½):
  β·log π/π_ref for reference-based methods (sign only, so β drops out; per token for TRL's IPO), average
  log-prob for SimPO, log-odds
  of the average log-prob for ORPO, the reward model for PPO / Online DPO's proxy view;
- val_win_rate: win rate on validation prompts disjoint from the test prompts; the only metric used to pick a
  sweep's best setting (selection on the test prompts would bias the reported win rate upward);
- implicit_gold_corr: within-prompt Pearson correlation of that implicit reward with the gold reward over
  several π_ref samples per prompt (does the learned reward rank completions like the truth?).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.evaluation.crossed import crossed_ci
from bench.evaluation.estimators import pairwise_accuracy, win_matrix, within_prompt_corr

SAMPLES_KEPT = 64


def implicit_rewards(kind: str | None, policy_lp, ref_lp, lengths, proxy_scores=None) -> np.ndarray | None:
    """The algorithm's own reward of completions, from summed log-probs (numpy arrays)."""
    if kind == "log_ratio":
        return policy_lp - ref_lp
    if kind == "avg_log_ratio":  # TRL's IPO: log-ratios averaged per completion token
        return (policy_lp - ref_lp) / np.maximum(lengths, 1)
    if kind == "avg_logp":
        return policy_lp / np.maximum(lengths, 1)
    if kind == "log_odds":
        avg = np.minimum(policy_lp / np.maximum(lengths, 1), -1e-6)
        return avg - np.log1p(-np.exp(avg))
    if kind == "reward_model":
        return proxy_scores
    return None


def final_drift(now: dict[str, np.ndarray], base: dict[str, np.ndarray]) -> dict[str, float]:
    """Drift of the final policy on every held-out pair: the curve row's quantities plus the fraction of pairs
    whose chosen log-prob fell (Razin et al. 2024, "Unintentional unalignment")."""
    from bench.evaluation.curves import drift_row

    row = drift_row(now, base)
    out = {k: row[k] for k in ("chosen_logp_delta", "rejected_logp_delta", "margin_delta",
                               "chosen_logp_delta_per_token", "rejected_logp_delta_per_token")}
    out["chosen_fell_fraction"] = float((now["chosen"] < base["chosen"] - 1e-6).mean())
    return out


def write_table(path, columns: dict[str, np.ndarray]) -> None:
    """A per-unit CSV (one row per prompt or pair), the input of the suite-level interval."""
    import pandas as pd

    from bench.io import write_text_atomic

    write_text_atomic(path, pd.DataFrame(columns).to_csv(index=False, float_format="%.12g"))  # exact enough that
    # the intervals built from these units contain the point estimates in metrics.json


def alignment_tax(ctx, outcome) -> dict[str, Any]:
    """lm-eval scores of the trained policy (the base policy for training-free references) on the suite's tasks.

    The controlled world ships local tasks (`controlled_grammar`, `controlled_tone`); real suites list standard lm-eval tasks.
    `lm_eval_score` is the mean of each task's primary metric; every metric is kept as `lm_eval/<task>/<m>`.
    """
    from bench.evaluation.lm_eval_adapter import build_controlled_tasks, run_lm_eval, summary_score

    world, ev = ctx.stages.world(), ctx.spec.eval
    include = build_controlled_tasks(world.root) if world.kind == "controlled" else None
    model_dir = outcome.policy_dir or world.base_model_dir
    results = run_lm_eval(model_dir, world.tokenizer_dir, list(ev.lm_eval_tasks), include_path=include,
                          limit=ev.lm_eval_limit, device=str(ctx.stages.device),
                          trust_task_code=getattr(ev, "trust_task_code", False))
    out: dict[str, Any] = {"lm_eval_score": summary_score(results)}
    for task, values in results.items():
        for metric, value in values.items():
            out[f"lm_eval/{task}/{metric}"] = value
    return out


def win_readings(ctx, m, wins: np.ndarray, tok, per_prompt: dict) -> dict[str, Any]:
    """What the win is made of (bench/evaluation/win_parts.py): the length-controlled win rate for every world,
    and, where the judge knows the grammar (`well_formed`), the grammar and sentiment parts. Adds their
    per-comparison columns (`lc_ref<j>`, `grammar_ref<j>`, `sentiment_ref<j>`) to `per_prompt`."""
    from bench.evaluation.judges import judge_for_world
    from bench.evaluation.reference import reference_samples
    from bench.evaluation.win_parts import grammar_sentiment_parts, length_controlled

    ev, stages = ctx.spec.eval, ctx.stages
    ref_completions, _ = reference_samples(stages, len(m.prompts), ev.max_new_tokens, ev.temperature)
    k = wins.shape[1]
    flat_prompts = [p for p in m.prompts for _ in range(k)]
    flat_refs = [c for row in ref_completions for c in row[:k]]

    def tokens(texts):
        return np.array([len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts], dtype=float)

    out: dict[str, Any] = {}
    lc, lc_units, phi = length_controlled(wins, tokens(m.completions), tokens(flat_refs).reshape(wins.shape))
    _, out["win_rate_lc_run_lo"], out["win_rate_lc_run_hi"] = crossed_ci(lc_units[None], bounds=(0.0, 1.0))
    out["win_rate_lc"], out["win_rate_length_slope"] = lc, phi
    per_prompt.update({f"lc_ref{j}": lc_units[:, j] for j in range(k)})
    well_formed = getattr(judge_for_world(stages.world()), "well_formed", None)
    if well_formed is not None:
        policy_ok = well_formed(m.prompts, m.completions)
        ref_ok = well_formed(flat_prompts, flat_refs).reshape(wins.shape)
        grammar, sentiment = grammar_sentiment_parts(wins, policy_ok, ref_ok)
        out["win_rate_grammar"], out["win_rate_sentiment"] = float(grammar.mean()), float(sentiment.mean())
        per_prompt["well_formed"] = policy_ok.astype(float)  # e.g. corr(length, gold) among well-formed samples
        per_prompt.update({f"grammar_ref{j}": grammar[:, j] for j in range(k)})
        per_prompt.update({f"sentiment_ref{j}": sentiment[:, j] for j in range(k)})
    return out


def evaluate_run(ctx, outcome) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from bench.evaluation.judges import RewardModelJudge
    from bench.evaluation.policy_metrics import pair_logps
    from bench.evaluation.quality import quality_metrics
    from bench.evaluation.reference import control_set, generation_metrics, reference_model, reference_samples
    from bench.modeling import load_causal_lm, load_tokenizer, sequence_logps
    from bench.padding_trim import full_width

    spec, ev, stages = ctx.spec, ctx.spec.eval, ctx.stages
    world = stages.world()
    cls = ctx.algorithm  # what the algorithm declares, passed in (the evaluation never imports algorithms/)
    tok = load_tokenizer(world.tokenizer_dir)
    policy = load_causal_lm(outcome.policy_dir, stages.device) if outcome.policy_dir else reference_model(stages)
    ref = reference_model(stages)
    metrics: dict[str, Any] = {}

    # drift: the final curve point (also the only point of training-free references); the held-out values are
    # replaced below by the same quantities over ALL held-out pairs, the train_ ones stay on the tracked subset
    ctx.curves.maybe_record(policy, outcome.steps, final=True)
    for row in ctx.curves.rows[-2:]:
        prefix = "" if row["split"] == "heldout" else "train_"
        for key in ("chosen_logp_delta", "rejected_logp_delta", "margin_delta", "chosen_logp_delta_per_token",
                    "rejected_logp_delta_per_token"):
            if prefix == "" or "per_token" not in key:
                metrics[prefix + key] = row[key]

    # generation metrics on the held-out prompts
    if outcome.extra.get("best_of_n"):
        from bench.evaluation.best_of_n import best_of_n_metrics

        m, ref_scores = best_of_n_metrics(ctx, int(outcome.extra["best_of_n"]))
    elif outcome.extra.get("scripted"):
        from bench.evaluation.scripted import scripted_metrics

        m, ref_scores = scripted_metrics(ctx, str(outcome.extra["scripted"]))
    else:  # the final curve point just sampled and scored the same prompts with the same seed: reuse it
        m, ref_scores = ctx.curves.latest(policy, ("generation", ev.prompts)) or generation_metrics(ctx, policy,
                                                                                                   ev.prompts)
    wins = win_matrix(m.scores, ref_scores)  # [prompts, reference draws]
    # within-run intervals: the one uncertainty model with one seed (t over prompts, each with its draws)
    metrics["win_rate"], metrics["win_rate_run_lo"], metrics["win_rate_run_hi"] = crossed_ci(
        wins[None], bounds=(0.0, 1.0))
    metrics["tie_rate"] = float((wins == 0.5).mean())
    metrics["gold_reward"], metrics["gold_reward_run_lo"], metrics["gold_reward_run_hi"] = crossed_ci(m.scores[None])
    metrics["kl"], metrics["kl_run_lo"], metrics["kl_run_hi"] = crossed_ci(
        m.kl_k1[None], bounds=(0.0, np.inf))
    per_prompt = {"prompt_index": np.arange(len(m.scores)), "gold_reward": m.scores, "kl": m.kl_k1,
                  "kl_tokenwise": m.kl_tokenwise, "length": m.lengths,
                  "reference_gold": np.asarray(ref_scores, dtype=float).mean(axis=1),
                  **{f"win_ref{j}": wins[:, j] for j in range(wins.shape[1])}}
    if world.kind == "controlled":
        metrics.update(frontier_efficiency(ctx, m, ref_scores, per_prompt))
    metrics.update(win_readings(ctx, m, wins, tok, per_prompt))
    metrics["kl_tokenwise"] = float(m.kl_tokenwise.mean())
    metrics["length"] = float(m.lengths.mean())
    metrics["sample_logp"] = float(m.logp.mean())
    metrics["sample_entropy"] = float(m.entropy.mean())
    metrics["reference_gold_reward"] = float(np.mean(ref_scores))
    metrics.update(quality_metrics(ctx, policy, m))
    training_free_samples = outcome.extra.get("best_of_n") or outcome.extra.get("scripted")
    if ev.validation_prompts and not training_free_samples and spec.swept and \
            len(world.eval_prompts) > ev.prompts:  # validation prompts exist only after the test prompts
        # (only a swept label selects a setting: for a single setting the validation samples would be unused)
        # model selection for sweeps uses these prompts, never the test prompts above
        val, val_ref = generation_metrics(ctx, policy, ev.validation_prompts, offset=ev.prompts)
        if len(val.scores):
            metrics["val_win_rate"] = float(win_matrix(val.scores, val_ref).mean())

    proxy = None
    if outcome.proxy_reward_dir is not None:
        proxy = RewardModelJudge(outcome.proxy_reward_dir, device=stages.device)
        metrics["proxy_reward"] = float(proxy.score(m.prompts, m.completions).mean())

    # implicit reward: accuracy on held-out pairs, correlation with gold over π_ref samples
    kind = cls.implicit_reward
    heldout = world.load_pairs("heldout")
    pairs = {k: list(heldout[k]) for k in ("prompt", "chosen", "rejected")}
    # displacement over ALL held-out pairs, and against the control set (fresh π_ref samples: global drift)
    now, base = pair_logps(policy, tok, pairs), stages.base_logps("heldout", len(heldout))
    metrics.update(final_drift(now, base))
    control = control_set(stages, ev.prompts, ev.max_new_tokens, ev.temperature)
    control_now, _ = sequence_logps(policy, tok, control["prompt"], control["completion"])
    dctl = np.asarray(control_now) - control["ref_logp"]
    metrics["control_logp_delta"] = float(dctl.mean())
    metrics["control_logp_delta_per_token"] = float((dctl / np.maximum(control["len"], 1)).mean())
    metrics["chosen_vs_control_per_token"] = metrics["chosen_logp_delta_per_token"] - \
        metrics["control_logp_delta_per_token"]
    if len(dctl) == len(per_prompt["gold_reward"]):  # the control set lies on the test prompts
        per_prompt["control_logp_delta"] = dctl
    per_pair = {"pair_index": np.arange(len(now["chosen"])), "chosen_logp_delta": now["chosen"] - base["chosen"],
                "rejected_logp_delta": now["rejected"] - base["rejected"],
                "chosen_fell": (now["chosen"] < base["chosen"] - 1e-6).astype(float)}
    if kind is not None:
        proxy_c = proxy.score(pairs["prompt"], pairs["chosen"]) if kind == "reward_model" and proxy else None
        proxy_r = proxy.score(pairs["prompt"], pairs["rejected"]) if kind == "reward_model" and proxy else None
        rc = implicit_rewards(kind, now["chosen"], base["chosen"], now["chosen_len"], proxy_c)
        rr = implicit_rewards(kind, now["rejected"], base["rejected"], now["rejected_len"], proxy_r)
        if rc is not None:
            metrics["pref_accuracy"] = pairwise_accuracy(rc, rr)
            per_pair["pref_correct"] = np.where(rc == rr, 0.5, (rc > rr).astype(float))
        if kind in ("log_ratio", "avg_log_ratio"):
            # the margin the loss drives on pairs it trained on, beside its analytic optimum where finite
            train_pairs = stages.curve_pairs("train", ev.curve_pairs)
            base_train = stages.base_logps("train", ev.curve_pairs)
            now_train = ctx.curves.latest(policy, ("pairs", "train")) or pair_logps(policy, tok, train_pairs)
            margins = (implicit_rewards(kind, now_train["chosen"], base_train["chosen"], now_train["chosen_len"])
                       - implicit_rewards(kind, now_train["rejected"], base_train["rejected"],
                                          now_train["rejected_len"]))
            metrics["train_implicit_margin"] = float(np.median(margins))
            target = cls.margin_target(spec.param_dict)
            if target is not None:
                metrics["margin_target"] = float(target)
        corr_set = stages.limits()["corr_samples"]
        with full_width():  # π_ref's values come from the limits, computed at full width (bench.padding_trim)
            lp_now, lens = sequence_logps(policy, tok, corr_set["prompt"], corr_set["completion"])
        lp_ref = np.asarray(corr_set["ref_logp"])
        proxy_corr = proxy.score(corr_set["prompt"], corr_set["completion"]) if kind == "reward_model" and proxy \
            else None
        implicit = implicit_rewards(kind, lp_now, lp_ref, lens, proxy_corr)
        if implicit is not None:
            metrics["implicit_gold_corr"] = within_prompt_corr(implicit, np.asarray(corr_set["gold"]),
                                                               np.asarray(corr_set["group"]))

    if ev.lm_eval_tasks:
        metrics.update(alignment_tax(ctx, outcome))

    ref_s, _ = reference_samples(stages, ev.prompts, ev.max_new_tokens, ev.temperature)
    samples = [{"prompt": p, "completion": c, "score": float(s), "reference": rc_[0], "reference_score": float(rs[0]),
                "kl": float(k)}
               for p, c, s, rc_, rs, k in zip(m.prompts[:SAMPLES_KEPT], m.completions, m.scores, ref_s,
                                              ref_scores, m.kl_k1)]
    drift_table = pair_drift_table(ctx, policy, tok, pairs, heldout, now, base, control, dctl)
    metrics.update(displacement_metrics(drift_table))
    if ctx.run_dir is not None:
        write_table(ctx.run_dir / "per_prompt.csv", per_prompt)
        write_table(ctx.run_dir / "per_pair.csv", per_pair)
        write_table(ctx.run_dir / "pair_drift.csv", drift_table)
        if ctx.curves.pair_rows:
            write_table(ctx.run_dir / "curve_pair_drift.csv", long_table(ctx.curves.pair_rows))
        if ctx.curves.prompt_rows:
            write_table(ctx.run_dir / "curve_prompts.csv", curve_prompt_table(ctx.curves.prompt_rows))
    return {k: (float(v) if isinstance(v, (np.floating, np.integer)) else v) for k, v in metrics.items()}, samples


def frontier_efficiency(ctx, m, ref_scores, per_prompt: dict) -> dict[str, Any]:
    """Gold gain over π_ref as a fraction of π*'s (and best-of-n's) gain at the run's tokenwise KL
    (bench/evaluation/frontier.py); the limits' π_ref samples are raised to cover that KL (the suite's limits.json
    covers every curve point too: bench/world_record.py runs_reach_kl). Per-prompt values go to per_prompt.csv
    (`efficiency`, `efficiency_bon`): the units of the suite interval."""
    from bench.evaluation.frontier import efficiency_units

    kls = [float(m.kl_tokenwise.mean())]
    limits = ctx.stages.limits(reach_kl=kls[0])
    out: dict[str, Any] = {"limit_samples_used": int(limits["samples_per_prompt"])}
    for which, col in (("optimum", "efficiency"), ("best_of_n", "efficiency_bon")):
        units = efficiency_units(m.scores, ref_scores, kls[0], limits, which)
        per_prompt[col] = units
        name = "frontier_efficiency" if which == "optimum" else "frontier_efficiency_bon"
        if np.isfinite(units).all():
            out[name], out[f"{name}_run_lo"], out[f"{name}_run_hi"] = crossed_ci(units[None])
        else:  # no valid limit estimate at this KL: no efficiency (the chart says so)
            out[name] = float("nan")
    return out


def pair_drift_table(ctx, policy, tok, pairs, heldout, now, base, control, dctl) -> dict[str, np.ndarray]:
    """One row per completion: every held-out pair's chosen and rejected, the tracked training pairs' (the ones
    the curves follow; the policy trained on them), and the control set's fresh π_ref samples — with Δlog π per
    sequence and per token, the covariates of the quality adjustment (gold, length, well-formedness) and, per pair,
    CHES and its length-normalised variant under π_ref (Razin et al. 2024). Columns: split (heldout | train |
    control), unit (pair or control index), group (chosen | rejected | control), delta, delta_per_token, length,
    gold, well_formed, ches, ches_ln."""
    from bench.evaluation.displacement import ches, summed_hidden
    from bench.evaluation.judges import judge_for_world
    from bench.evaluation.policy_metrics import pair_logps
    from bench.evaluation.reference import reference_model

    stages, ev = ctx.stages, ctx.spec.eval
    world = stages.world()
    ref = reference_model(stages)
    train = stages.curve_pairs("train", ev.curve_pairs)
    train_base = stages.base_logps("train", ev.curve_pairs)
    train_now = ctx.curves.latest(policy, ("pairs", "train")) or pair_logps(policy, tok, train)
    held = dict(pairs, score_chosen=_floats(heldout["score_chosen"]), score_rejected=_floats(heldout["score_rejected"]))
    control_gold = judge_for_world(world).score(control["prompt"], control["completion"])
    if world.kind == "controlled":
        from bench.worlds.controlled.language import is_well_formed

        def formed(ps, cs):
            return np.array([float(is_well_formed(p, c)) for p, c in zip(ps, cs)])
    else:
        def formed(ps, cs):
            return np.full(len(ps), np.nan)

    cols: dict[str, list] = {k: [] for k in ("split", "unit", "group", "delta", "delta_per_token", "length",
                                             "gold", "well_formed", "ches", "ches_ln")}

    def add(split, group, delta, length, gold, wf, ch, ch_ln):
        n = len(delta)
        cols["split"] += [split] * n
        cols["unit"] += list(range(n))
        cols["group"] += [group] * n
        cols["delta"] += list(delta)
        cols["delta_per_token"] += list(np.asarray(delta) / np.maximum(length, 1))
        cols["length"] += list(length)
        cols["gold"] += list(gold)
        cols["well_formed"] += list(wf)
        cols["ches"] += list(ch)
        cols["ches_ln"] += list(ch_ln)

    for split, p, b, n in (("heldout", held, base, now), ("train", train, train_base, train_now)):
        hc, lc = summed_hidden(ref, tok, p["prompt"], p["chosen"])
        hr, lr = summed_hidden(ref, tok, p["prompt"], p["rejected"])
        score, score_ln = ches(hc, hr), ches(hc, hr, lc, lr)
        for side in ("chosen", "rejected"):
            add(split, side, n[side] - b[side], np.asarray(b[f"{side}_len"], dtype=float),
                _floats(p[f"score_{side}"]), formed(p["prompt"], p[side]), score, score_ln)
    k = len(control["prompt"])
    add("control", "control", dctl, control["len"], control_gold, formed(control["prompt"], control["completion"]),
        np.full(k, np.nan), np.full(k, np.nan))
    return {k: np.asarray(v) for k, v in cols.items()}


def displacement_metrics(table: dict[str, np.ndarray]) -> dict[str, float]:
    """Raw and quality-adjusted chosen − rejected (and each against the control), per sequence and per token, on
    held-out (no prefix) and tracked training pairs (`train_`), with within-run intervals over units; and the
    Spearman correlation of CHES with the chosen completion's Δlog π per pair (Razin et al. 2024 predict < 0)."""
    import pandas as pd

    from bench.evaluation.displacement import displacement_readings, rank_corr

    frame = pd.DataFrame(table)
    out: dict[str, float] = {}
    for split, prefix in (("heldout", ""), ("train", "train_")):
        for name, (value, _, infl) in displacement_readings(frame, split).items():
            _, lo, hi = crossed_ci(infl[None])
            out[f"{prefix}{name}"], out[f"{prefix}{name}_run_lo"], out[f"{prefix}{name}_run_hi"] = value, lo, hi
        chosen = frame[(frame["split"] == split) & (frame["group"] == "chosen")]
        out[f"{prefix}ches_chosen_corr"] = rank_corr(chosen["ches"], chosen["delta"])
        out[f"{prefix}ches_ln_chosen_corr"] = rank_corr(chosen["ches_ln"], chosen["delta_per_token"])
    return out


def curve_prompt_table(rows: list[dict]) -> dict[str, np.ndarray]:
    """The per-prompt values of every generation point, long format (point, prompt_index, ...)."""
    keys = [k for k in rows[0] if k != "point"]
    out = {"point": np.concatenate([np.full(len(r["gold_reward"]), r["point"]) for r in rows]),
           "prompt_index": np.concatenate([np.arange(len(r["gold_reward"])) for r in rows])}
    for k in keys:
        out[k] = np.concatenate([np.asarray(r[k], dtype=float) for r in rows])
    return out


def _floats(values) -> np.ndarray:
    """Scores as floats, a missing one (a hub dataset without scores) as NaN."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def long_table(rows: list[dict]) -> dict[str, np.ndarray]:
    """Concatenate per-point dicts of equal-length arrays (scalars repeated) into one long table."""
    keys = list(rows[0])
    out = {}
    for k in keys:
        parts = []
        for r in rows:
            n = len(r["unit"])
            v = r[k]
            parts.append(np.asarray(v) if np.ndim(v) else np.full(n, v, dtype=object if isinstance(v, str) else None))
        out[k] = np.concatenate(parts)
    return out
