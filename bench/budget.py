"""Equal compute: a meter that counts every model pass an algorithm makes, and the callback that stops training.

Accounting (Kaplan et al. 2020, "Scaling Laws", Sec. 2.1): a forward pass costs 2·N·tokens FLOPs and a
backward pass 4·N·tokens, with N the model's parameter count and tokens the non-padding tokens processed (in
generation, the positions of rows still live: a row is charged up to and including the end token it feeds, whichever
sampler runs it; `LiveRows`). The
meter hooks the forward of every model a run uses — policy, reference, reward model, value model — so
generation (one token at a time with a KV cache), reference passes, reward scoring and value passes are all
counted, each under its component name. A forward made with gradients enabled on a model with trainable
parameters also books its backward (4·N·tokens): every such forward in these trainers is followed by one.
Stages done outside a run's trainers (reward-model training, reference log-prob precompute) are charged with
`charge()` from their own recorded counts, so a run pays for what it uses even when the stage is cached.

Divergence guard (`DivergenceGuard`, run by the budget callback at every step and every log): training stops
with `Diverged` (the run is recorded with status "diverged", the step, the quantity and its value, and its
training logs) when
- a logged loss (`loss`, or any key containing "loss") or the gradient norm (`grad_norm`) is NaN or ±inf;
- the training loss explodes: |loss| > LOSS_EXPLOSION_FACTOR (1000) × max(|first logged loss|, 1), e.g. a DPO
  loss that starts at 0.69 and passes 1000;
- a policy parameter becomes NaN or ±inf after an optimizer step (checked before the curve callback samples).
Two budget views (`[budget] view`): under `end_to_end` every FLOP a run's result depends on counts, the shared
reward model's training included (charged in full to every PPO / Online DPO run, though it is trained once);
under `amortised` the components in `amortised` (the reward model's training) are booked apart
(`flops_amortised`, listed in the report) and the budget pays for policy optimisation only, so every algorithm
gets the same optimisation compute.

Frozen weights (LoRA, `[train] peft`): the backward still carries activation gradients through every frozen
layer (≈ 2·N·tokens: the adapters sit in every block, so gradients flow down to the first one), but weight
gradients (the other ≈ 2·N·tokens) are computed only for the trainable parameters: backward =
2·N·tokens + 2·N_trainable·tokens, which is 4·N·tokens when everything trains. N includes the adapters, which
the forward also computes; they are counted from the model's parameters at each forward, since TRL injects them
after the meter is attached. A forward without gradients (TRL's adapter-disabled reference pass) costs 2·N.

Attention's quadratic term is ignored (sequences here are short next to the model width); peak memory is the
CUDA allocator's peak on GPU, else the process's peak resident set size.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


def forward_flops(n_params: int, tokens: int) -> float:
    return 2.0 * n_params * tokens


def backward_flops(n_params: int, tokens: int, n_trainable: int | None = None) -> float:
    """Activation gradients through all N parameters (2·N·tokens) plus weight gradients for the trainable ones
    (2·N_trainable·tokens; all of them unless told): 4·N·tokens for full fine-tuning."""
    trainable = n_params if n_trainable is None else n_trainable
    return 2.0 * n_params * tokens + 2.0 * trainable * tokens


def count_tokens(args: tuple, kwargs: dict) -> int:
    """Non-padding tokens of one forward: the last L columns of the attention mask (L = new positions).

    With a KV cache the mask covers the whole prefix while input_ids holds only the new tokens, so the tail of
    the mask is what is processed now; without a cache the tail is the whole mask.
    """
    ids = kwargs.get("input_ids", args[0] if args else None)
    embeds = kwargs.get("inputs_embeds")
    mask = kwargs.get("attention_mask")
    shape = tuple(ids.shape) if ids is not None else (tuple(embeds.shape[:2]) if embeds is not None else None)
    if shape is None:
        return 0
    if ids is not None and ids.dim() == 1:
        shape = (1, shape[0])
    if mask is not None and mask.dim() == 2:
        return int(mask[:, -shape[1]:].sum())
    return shape[0] * shape[1]


class LiveRows:
    """Tokens of one forward under the meter's one convention: a position is charged while its row is live.

    A decode step of cached generation (one new position per row, the mask longer than the input) charges each row
    whose mask says the position is real *and* that has not yet fed an end token: a row feeds its end token once
    (that position is computed, as any other) and is over after it. Our sampler (`bench.modeling.sample`) already
    writes 0 into the mask of an ended row, so it is charged exactly as before; `transformers`' `generate` (TRL's
    Online DPO, RLOO, GRPO) keeps 1 there and feeds the pad token to ended rows until the longest row ends: those
    positions were charged until 2026-12 (~10% of Online DPO's post-reward-model budget), now they are not, so
    every sampler is charged for the same positions. Any other forward (training, scoring, a prompt's first pass:
    mask as wide as the input) is charged by `count_tokens` and starts a new generation."""

    def __init__(self, ends: frozenset):
        self.ends = ends
        self.ended = None  # bool per row of the generation in progress
        self._ends_t = None

    def tokens(self, args: tuple, kwargs: dict) -> int:
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        decoding = (ids is not None and ids.dim() == 2 and ids.shape[1] == 1 and mask is not None
                    and mask.dim() == 2 and mask.shape[1] > 1 and mask.shape[0] == ids.shape[0])
        if not decoding:
            self.ended = None
            return count_tokens(args, kwargs)
        import torch

        if self.ended is None or self.ended.shape[0] != ids.shape[0] or self.ended.device != ids.device:
            self.ended = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        live = mask[:, -1].bool() & ~self.ended
        if self.ends:
            if self._ends_t is None or self._ends_t.device != ids.device:
                self._ends_t = torch.tensor(sorted(self.ends), device=ids.device)
            self.ended = self.ended | torch.isin(ids[:, 0], self._ends_t)
        return int(live.sum())


LOSS_EXPLOSION_FACTOR = 1000.0


class Diverged(Exception):
    """Training diverged numerically: raised from the step callback, recorded as status "diverged"."""

    def __init__(self, step: int, metric: str, value: float, logs: list[dict[str, Any]] | None = None):
        self.step, self.metric, self.value = int(step), metric, value
        self.logs = list(logs or [])
        super().__init__(f"diverged at step {self.step}: {metric} = {_fmt_value(value)}")

    def record(self) -> dict[str, Any]:
        return {"step": self.step, "metric": self.metric, "value": _fmt_value(self.value)}


def _fmt_value(value: Any) -> Any:
    """A JSON-safe value: non-finite floats as the strings 'nan', 'inf', '-inf'."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


@dataclass
class DivergenceGuard:
    """Watches a run's training logs (and parameters) for numerical divergence; see the module docstring."""

    factor: float = LOSS_EXPLOSION_FACTOR
    first_loss: dict[str, float] = field(default_factory=dict)
    step: int = 0
    logs: list[dict[str, Any]] = field(default_factory=list)  # the trainer's log history (kept on failure)
    checked: int = 0

    def check_log(self, entry: dict[str, Any], step: int) -> None:
        import math

        self.step = step
        for key, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            watched = "loss" in key or key == "grad_norm"
            if not watched:
                continue
            value = float(value)
            if not math.isfinite(value):
                raise Diverged(step, key, value, self.logs)
            if key == "loss" or key.startswith("loss/"):
                first = self.first_loss.setdefault(key, value)
                if abs(value) > self.factor * max(abs(first), 1.0):
                    raise Diverged(step, key, value, self.logs)

    def check_history(self, history: list[dict[str, Any]], step: int) -> None:
        self.logs = history
        for entry in history[self.checked:]:
            self.checked += 1
            self.check_log(entry, int(entry.get("step", step) or step))

    def check_parameters(self, model, step: int) -> None:
        if model is None:
            return
        import torch

        params = [p.detach() for p in model.parameters() if p.is_floating_point()]
        if not params:
            return
        norms = torch._foreach_norm(params)
        if not bool(torch.stack([n.float() for n in norms]).isfinite().all()):
            raise Diverged(step, "parameters", float("nan"), self.logs)


@dataclass
class ComputeMeter:
    """FLOPs by component, plus tokens, wall time and peak memory. Pause it around evaluation."""

    budget_kind: str = "flops"      # "flops" | "seconds"
    budget: float = float("inf")
    amortised: frozenset = frozenset()  # components booked outside the budget (the amortised view)
    flops: float = 0.0
    flops_amortised: float = 0.0
    by_component: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    tokens: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    paused_depth: int = 0
    train_seconds: float = 0.0
    _t_start: float | None = None
    _unsynced: float = 0.0
    _handles: list[Any] = field(default_factory=list)
    guard: DivergenceGuard = field(default_factory=DivergenceGuard)

    # -- counting
    def attach(self, model, component: str, n_params: int | None = None, ends: frozenset | None = None) -> None:
        """Count every forward of `model` (and its backward when gradients flow) under `component`.

        `n_params` defaults to the module's own parameter count (pass the whole model's when hooking a backbone).
        `ends`: the ids a generated row ends at (`bench.modeling.end_tokens(model, tokenizer)`; default: the model's
        generation config's).
        """
        own = sum(p.numel() for p in model.parameters())
        if n_params is None:
            n_params = own
        if ends is None:
            from bench.modeling import end_tokens  # a metered model's process has torch and transformers already

            ends = end_tokens(model)
        rows = LiveRows(frozenset(ends))

        def hook(module, args, kwargs):
            if self.paused_depth:
                rows.ended = None
                return
            import torch

            tokens = rows.tokens(args, kwargs)
            params = list(module.parameters())
            total = sum(p.numel() for p in params)
            n = n_params + max(total - own, 0)  # + adapters injected since attach (LoRA)
            cost = forward_flops(n, tokens)
            if torch.is_grad_enabled() and module.training:
                trainable = sum(p.numel() for p in params if p.requires_grad)
                if trainable:  # every weight trains (the usual case): 4·N; frozen weights: see the docstring
                    cost += backward_flops(n, tokens, n if trainable == total else trainable)
            self.charge(component, cost, tokens, per_rank=True)

        self._handles.append(model.register_forward_pre_hook(hook, with_kwargs=True))

    def attach_alongside(self, model, component: str, n_params: int) -> None:
        """Charge `component` a forward of `n_params` on every training forward of `model` (grad enabled, training
        mode, not paused), over the same non-padding tokens: what a frozen model run on the same batch in the same
        step would have been charged by `attach`. For a pass whose result is served from a cache (the DPO family's
        reference log-probs, bench/algorithms/reference_cache.py) but whose cost the budget still pays per step."""
        def hook(module, args, kwargs):
            import torch

            if self.paused_depth or not (torch.is_grad_enabled() and module.training):
                return
            tokens = count_tokens(args, kwargs)
            self.charge(component, forward_flops(n_params, tokens), tokens, per_rank=True)

        self._handles.append(model.register_forward_pre_hook(hook, with_kwargs=True))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def charge(self, component: str, flops: float, tokens: int = 0, per_rank: bool = False) -> None:
        """Book FLOPs. `per_rank`: spent by this process only (its shard of a multi-process step), to be summed
        over ranks by `sync()`; shared stages charged identically on every rank are not per-rank."""
        if component in self.amortised:  # recorded, listed apart, not paid from the budget
            self.flops_amortised += flops
            self.by_component[component] += flops
            self.tokens[component] += tokens
            return
        self.flops += flops
        self.by_component[component] += flops
        self.tokens[component] += tokens
        if per_rank:
            self._unsynced += flops

    def sync(self) -> None:
        """Multi-process runs: add the other ranks' per-rank FLOPs since the last sync (a no-op otherwise)."""
        from bench.distributed import sum_over_ranks, world_size

        if world_size() > 1:
            total = sum_over_ranks(self._unsynced)
            self.flops += total - self._unsynced
            self.by_component["other_ranks"] += total - self._unsynced
        self._unsynced = 0.0

    @contextlib.contextmanager
    def paused(self):
        """Evaluation inside training is not charged to the run (and its wall time is excluded)."""
        self.paused_depth += 1
        running = self._t_start is not None
        if running:
            self.stop_clock()
        try:
            yield
        finally:
            self.paused_depth -= 1
            if running:
                self.start_clock()

    # -- time
    def start_clock(self) -> None:
        self._t_start = time.perf_counter()

    def stop_clock(self) -> None:
        if self._t_start is not None:
            self.train_seconds += time.perf_counter() - self._t_start
            self._t_start = None

    @property
    def seconds(self) -> float:
        running = time.perf_counter() - self._t_start if self._t_start is not None else 0.0
        return self.train_seconds + running

    # -- budget
    @property
    def spent(self) -> float:
        return self.flops if self.budget_kind == "flops" else self.seconds

    @property
    def fraction(self) -> float:
        return self.spent / self.budget if self.budget not in (0, float("inf")) else 0.0

    def exhausted(self, next_step_cost: float = 0.0) -> bool:
        """True when the budget is spent, or when the next step (estimated as the last one) would overrun it."""
        return self.spent >= self.budget or self.spent + next_step_cost > self.budget

    def record(self) -> dict[str, Any]:
        return {
            "flops": self.flops,
            "flops_by_component": dict(self.by_component),
            "tokens": int(sum(self.tokens.values())),
            "tokens_by_component": dict(self.tokens),
            "train_seconds": self.seconds,
            "flops_amortised": self.flops_amortised,
            "budget_kind": self.budget_kind,
            "budget": self.budget,
            "budget_fraction": self.fraction,
        }


def reset_peak_memory() -> None:
    """Start a run's peak-memory window: CUDA's allocator peak, and on Linux the process's RSS high-water mark.
    Torch is asked only where it is imported already: a torch-free run would otherwise pay its import (~3 s)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        with open("/proc/self/clear_refs", "w") as f:  # "5" resets VmHWM (Linux >= 4.0)
            f.write("5")
    except OSError:
        pass


def peak_memory_mb() -> float:
    """Peak since `reset_peak_memory()`: CUDA peak allocated if a GPU was used, else the peak RSS (VmHWM on Linux;
    elsewhere the process's lifetime peak)."""
    torch = sys.modules.get("torch")  # a run that used a GPU has imported torch
    if torch is not None and torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def budget_callback(meter: ComputeMeter, on_step=None):
    """A transformers `TrainerCallback` that stops training when the budget is spent, or raises `Diverged`
    when the run diverges numerically (`meter.guard`; see the module docstring).

    It stops *before* a step that would overrun (estimating a step's cost as the largest so far), so runs end
    within one optimizer step of the budget and, unless a step costs more than every earlier one, below it.
    `on_step(state)` runs after each step (progress reporting).
    """
    from transformers import TrainerCallback

    class BudgetCallback(TrainerCallback):
        def __init__(self):
            self.last_spent = 0.0
            self.last_step_cost = 0.0
            self.stopped_by_budget = False

        def on_train_begin(self, args, state, control, **kwargs):
            # charges made before training (a reward model, a reference precompute) are not a step's cost
            self.last_spent = meter.spent
            meter.start_clock()

        def on_step_end(self, args, state, control, **kwargs):
            from bench.distributed import sum_over_ranks

            guard = meter.guard
            guard.check_history(state.log_history, state.global_step)
            guard.check_parameters(kwargs.get("model"), state.global_step)  # before the curve callback samples
            meter.sync()
            spent = meter.spent
            # the largest step so far: step costs vary with padding, so the last one alone can under-predict
            self.last_step_cost = max(self.last_step_cost, spent - self.last_spent)
            self.last_spent = spent
            if on_step is not None:
                on_step(state)
            # every rank takes the same decision (any rank out of budget stops all; one alone would hang)
            if sum_over_ranks(float(meter.exhausted(self.last_step_cost))) > 0:
                self.stopped_by_budget = True
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            meter.guard.check_history(state.log_history, state.global_step)

        def on_train_end(self, args, state, control, **kwargs):
            meter.stop_clock()

    return BudgetCallback()
