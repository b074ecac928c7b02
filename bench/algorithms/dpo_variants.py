"""The chapter's further DPO variants, all through TRL's `DPOTrainer` (the same data, reference and meter as `dpo`).

    rpo      RPO / DPO + NLL, Pang et al. 2024          loss_type ["sigmoid", "sft"], loss_weights [1, rpo_alpha]
                                                        (TRL 1.12 dropped the `rpo_alpha` field; this is its loss)
    bco      BCO, Jung et al. 2024                      loss_type "bco_pair": chosen/rejected as a binary classifier
                                                        on β·log-ratio. TRL's experimental BCOTrainer adds the
                                                        paper's running-mean reward shift δ, unpaired data and a
                                                        density-ratio classifier; the paired loss here has δ = 0
    tr_dpo   TR-DPO, Gorbatovski et al. 2024            DPO with TRL's `sync_ref_model`: every `ref_model_sync_steps`
                                                        steps π_ref ← α·π_θ + (1−α)·π_ref (α = ref_model_mixup_alpha)
    odpo     ODPO, Amini et al. 2024                    −log σ(βh − Δ), Δ = α·log(1 + max(0, score_c − score_r)) from
                                                        the pair's recorded scores (loss hook)
    cal_dpo  Cal-DPO, Xiao et al. 2024                  −log σ(r_c − r_r) + ½[(r_c − 1/2β)² + (r_r + 1/2β)²] (loss hook)
    rebel    REBEL, Gao et al. 2024                     ((1/η)·h − (RM(y_c) − RM(y_r)))², the shared reward model's
                                                        scores of the training pairs (loss hook; charged like ppo;
                                                        only the pairs the budget can train on are scored)

Every loss is written once as a pure function in bench/algorithms/reference_losses.py (hand-computed examples
in its docstring) and cross-checked against TRL's own code where TRL computes it (tests/test_variants.py).

Evaluation deviation, TR-DPO: its implicit reward (for `pref_accuracy`) is measured against the *initial*
reference, the same π_ref every algorithm is judged against, not the moving one it trained against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.algorithms.dpo_family import DPOFamily, DPOParams
from bench.algorithms.registry import TrainParams, register
from bench.algorithms.reward_model import RewardModelParams, rm_forecast, use_reward_model
from bench.errors import UserError


@dataclass(frozen=True)
class RPOParams(DPOParams):
    rpo_alpha: float = field(default=1.0, metadata={"min": 0, "doc": "α: weight of the NLL term on the chosen completion"})


@register("rpo")
class RPO(DPOFamily):
    summary = "RPO / DPO+NLL (Pang et al. 2024): DPO plus α·NLL of the chosen completion (TRL sigmoid + sft)"
    paper = "Pang et al. 2024, Iterative Reasoning Preference Optimization, arXiv:2404.19733"
    family = "dpo"
    Params = RPOParams

    def loss_kwargs(self, p: dict) -> dict:
        return {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, p["rpo_alpha"]]}


@register("bco")
class BCO(DPOFamily):
    summary = "BCO (Jung et al. 2024): binary classifier on β·log-ratio, TRL 'bco_pair' (reward shift δ = 0)"
    paper = "Jung et al. 2024, Binary Classifier Optimization for Large Language Model Alignment, arXiv:2404.04656"
    family = "dpo"

    def loss_kwargs(self, p: dict) -> dict:
        return {"loss_type": ["bco_pair"]}


@dataclass(frozen=True)
class TRDPOParams(TrainParams):
    beta: float = field(default=0.1, metadata={"gt": 0, "doc": "KL strength β"})
    ref_model_mixup_alpha: float = field(default=0.6, metadata={"min": 0, "max": 1,
                                                                 "doc": "α of the soft update π_ref ← α·π_θ + (1−α)·π_ref"})
    ref_model_sync_steps: int = field(default=32, metadata={"min": 1, "doc": "steps between reference updates (TRL's "
                                                            "512 never fires in a ~130-step controlled run)"})
    precompute_ref_log_probs: bool = field(default=False, metadata={"choices": (False,),
                                                                     "doc": "a moving reference cannot be precomputed"})


@register("tr_dpo")
class TRDPO(DPOFamily):
    summary = "TR-DPO (Gorbatovski et al. 2024): DPO whose reference is softly synced to the policy (TRL sync_ref_model)"
    paper = "Gorbatovski et al. 2024, Learn Your Reference Model for Real Good Alignment, arXiv:2404.09656"
    family = "dpo"
    Params = TRDPOParams
    cached_reference = False  # the reference moves towards the policy during training

    def loss_kwargs(self, p: dict) -> dict:
        return {"loss_type": ["sigmoid"], "sync_ref_model": True, "ref_model_mixup_alpha": p["ref_model_mixup_alpha"],
                "ref_model_sync_steps": p["ref_model_sync_steps"]}


class HookedVariant(DPOFamily):
    """A variant whose loss TRL lacks: TRL's DPOTrainer with the pure reference loss as a hook."""

    cached_reference = False  # the hook scores π_ref itself in the step (its own log-prob code, kept as it was)

    def loss_kwargs(self, p: dict) -> dict:
        return {"loss_type": ["sigmoid"]}  # unused by the hook; keeps TRL's config valid

    def pair_loss(self, p: dict):
        raise NotImplementedError

    def make_trainer(self, p: dict, **kwargs):
        from bench.algorithms.loss_hooks import PairLossDPOTrainer

        return PairLossDPOTrainer(pair_loss=self.pair_loss(p), **kwargs)


@dataclass(frozen=True)
class ODPOParams(DPOParams):
    odpo_alpha: float = field(default=1.0, metadata={"min": 0, "doc": "α: scale of the offset α·log(1 + score gap)"})


def score_gap(ctx, train):
    """score_chosen − score_rejected of every training pair; one-line error when the data set records none."""
    import math

    cols = set(train.column_names)
    where = f"world '{ctx.spec.world.kind}' ({ctx.world.train_pairs_dir})"
    if not {"score_chosen", "score_rejected"} <= cols:
        raise UserError(f"{ctx.spec.algorithm}: the training pairs of {where} have no score_chosen/score_rejected "
                        "columns; use a data set that scores its pairs (the controlled world, UltraFeedback-"
                        "binarized) or another algorithm")
    gaps = [c - r if c is not None and r is not None else math.nan
            for c, r in zip(train["score_chosen"], train["score_rejected"])]
    missing = sum(math.isnan(g) for g in gaps)
    if missing:
        raise UserError(f"{ctx.spec.algorithm}: {missing} of {len(gaps)} training pairs of {where} have no score; "
                        "filter them out of the data set or use another algorithm")
    return gaps


@register("odpo")
class ODPO(HookedVariant):
    summary = "ODPO (Amini et al. 2024): DPO with a per-pair offset from the recorded score gap (loss hook)"
    paper = "Amini, Vieira & Cotterell 2024, Direct Preference Optimization with an Offset, arXiv:2402.10571"
    family = "dpo"
    Params = ODPOParams

    def prepare_pairs(self, ctx, train):
        import torch

        from bench.algorithms.loss_hooks import TARGET
        from bench.algorithms.reference_losses import odpo_offset

        gaps = torch.tensor(score_gap(ctx, train), dtype=torch.float64)
        offsets = odpo_offset(gaps, torch.zeros_like(gaps), ctx.params["odpo_alpha"])
        return train.add_column(TARGET, offsets.tolist())

    def pair_loss(self, p: dict):
        from bench.algorithms.reference_losses import odpo_loss

        beta = p["beta"]
        return lambda pc, pr, rc, rr, offset: odpo_loss(pc, pr, rc, rr, offset, beta)


@register("cal_dpo")
class CalDPO(HookedVariant):
    summary = "Cal-DPO (Xiao et al. 2024): DPO on log-ratios calibrated to ±1/(2β) (loss hook)"
    paper = "Xiao et al. 2024, Cal-DPO: Calibrated Direct Preference Optimization, NeurIPS 2024"
    family = "dpo"

    @classmethod
    def margin_target(cls, p: dict) -> float | None:
        return 1.0 / p["beta"]  # chosen pinned at +1/(2β), rejected at −1/(2β)

    def pair_loss(self, p: dict):
        from bench.algorithms.reference_losses import cal_dpo_loss

        beta = p["beta"]
        return lambda pc, pr, rc, rr: cal_dpo_loss(pc, pr, rc, rr, beta)


@dataclass(frozen=True)
class REBELParams(RewardModelParams, TrainParams):
    eta: float = field(default=1.0, metadata={"gt": 0, "doc": "η: the regression target is h/η = RM score gap"})
    precompute_ref_log_probs: bool = field(default=False, metadata={"doc": "as for dpo"})


@register("rebel")
class REBEL(HookedVariant):
    summary = "REBEL (Gao et al. 2024): regress the log-ratio gap onto the reward model's score gap (loss hook)"
    paper = "Gao et al. 2024, REBEL: Reinforcement Learning via Regressing Relative Rewards, arXiv:2404.16767"
    family = "dpo"
    Params = REBELParams
    uses_reward_model = True
    version = "2"  # 2: scores only the pairs the budget trains on (1 scored every pair up front)

    @classmethod
    def estimate(cls, spec, sizes: dict) -> dict:
        est = DPOFamily.estimate.__func__(cls, spec, sizes)
        rm, note = rm_forecast(spec, sizes)
        p = spec.param_dict
        score = 2 * sizes["n_params"] * sizes["tokens_per_sequence"] * 2 * p["per_device_train_batch_size"] \
            * p["gradient_accumulation_steps"]  # scoring one batch of pairs with the reward model
        est["step_flops"] += score
        if p["precompute_ref_log_probs"]:  # only the trained pairs are precomputed: a reference pass per step
            est["step_flops"] += score
        if est["steps"] is not None:
            est["steps"] = max(0, int((spec.budget.amount - rm) // est["step_flops"]))
        est["note"] = f"{note}; only the pairs trained on are scored"
        return est

    @staticmethod
    def scored_subset(n: int, keep: int, tracked: int, seed: int) -> list[int]:
        """Indices of the `keep` pairs REBEL scores: the first `tracked` (whose log-probs the curves follow, so the
        train_* displacement metrics measure pairs REBEL trained on, as for DPO), then a random draw of the rest
        with the run's seed."""
        import random

        track = min(tracked, keep)
        rest = list(range(track, n))
        random.Random(seed).shuffle(rest)
        return list(range(track)) + rest[:keep - track]

    @staticmethod
    def pairs_to_score(ctx, train, tok, n_params: int) -> int:
        """How many pairs the budget left after the reward model's charge can train on (with a 10% margin and one
        batch spare): REBEL scores only those, so a run is not charged for scoring pairs it never sees.

        Scoring all 4000 pairs of the controlled world costs about 31 DPO steps; charged up front it left REBEL 7
        steps in the end-to-end view. Under a seconds budget (no FLOP forecast) every pair is scored."""
        import math

        from bench.algorithms import trl_common as tc

        meter, p = ctx.meter, ctx.params
        if meter.budget_kind != "flops" or not math.isfinite(meter.budget):
            return len(train)
        tokens = tc.pair_tokens(train, tok)
        train_pair, precompute = DPOFamily.pair_flops(ctx, n_params, tokens)
        score_pair = 2 * n_params * tokens
        left = max(0.0, meter.budget - meter.spent)
        batch = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
        return min(len(train), math.ceil(1.1 * left / (train_pair + precompute + score_pair)) + batch)

    def prepare_pairs(self, ctx, train):
        import torch

        from bench.algorithms import trl_common as tc
        from bench.algorithms.loss_hooks import TARGET
        from bench.modeling import completion_batch, load_scalar_model, load_tokenizer

        rm_dir, self._rm_record = use_reward_model(ctx)
        self._rm_dir = rm_dir
        tok = load_tokenizer(ctx.world.tokenizer_dir)
        reward = load_scalar_model(rm_dir, ctx.device).eval()
        # the reward model shares the policy's backbone (a scalar head for the LM head): its size prices both
        keep = self.pairs_to_score(ctx, train, tok, sum(x.numel() for x in reward.parameters()))
        self._world_pairs = len(train)
        if keep < len(train):
            train = train.select(self.scored_subset(len(train), keep, ctx.spec.eval.curve_pairs, ctx.spec.seed))
        self._pairs_scored = len(train)
        tc.attach(ctx.meter, reward, "reward_model")  # scoring the pairs is charged to this run
        gaps = []
        with torch.no_grad():
            for i in range(0, len(train), 64):
                rows = train[i:i + 64]
                scores = []
                for side in ("chosen", "rejected"):
                    b = completion_batch(tok, rows["prompt"], rows[side], device=ctx.device)
                    scores.append(reward(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, 0])
                gaps += (scores[0] - scores[1]).float().cpu().tolist()
        return train.add_column(TARGET, gaps)

    def world_pairs(self, train) -> int:
        return self._world_pairs  # epochs are counted over the world's pairs, not the scored subset

    def trl_beta(self, p: dict) -> float:
        return 1.0 / p["eta"]  # TRL's logged rewards β·log-ratio are then REBEL's (1/η)·log-ratio

    def pair_loss(self, p: dict):
        from bench.algorithms.reference_losses import rebel_loss

        eta = p["eta"]
        return lambda pc, pr, rc, rr, gap: rebel_loss(pc, pr, rc, rr, gap, eta)

    def outcome_extra(self, ctx) -> dict:
        return {"proxy_reward_dir": self._rm_dir,
                "extra": {"reward_model": self._rm_record, "pairs_scored": self._pairs_scored}}
