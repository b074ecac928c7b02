"""Search a gold reward with its own code and check what it pays for as a reader would.

    python benchmarks/gold_search.py                                   # the controlled world's gold (v5)
    python benchmarks/gold_search.py --reward mypkg.gold:reward --steps 20000 --restarts 4

Hill-climbs completions over the controlled language's vocabulary from several prompts, under the sampler's real
cap (32 new tokens: a 32-word completion was cut before its end token), with `reward(completion, prompt)` as the
only guide (bench/worlds/controlled/gold_search.py). Prints the best find per prompt and restart, best first,
with the reader's predicates (conjunctions in their sense, no noun judged both ways, no noun or template
repeated, no longer than needed, well-formed) and, when the reward's module has `gold_reward_bound`, the stated
maximum. Exit status 1 when a find beats the stated maximum, or a find within 0.1 of it fails a predicate.
"""

from __future__ import annotations

import argparse
import importlib
import sys


def main(argv: list[str] | None = None) -> int:
    from bench.worlds.controlled.gold_search import PROMPTS, reader_verdict, search
    from bench.worlds.controlled.language import SAMPLER_CAP

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reward", default="bench.worlds.controlled.language:gold_reward",
                    help="module:function taking (completion, prompt) -> float")
    ap.add_argument("--steps", type=int, default=10000, help="mutations per climb")
    ap.add_argument("--restarts", type=int, default=2, help="climbs per prompt")
    ap.add_argument("--cap", type=int, default=SAMPLER_CAP, help="most words in a completion (the sampler's cap)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt", action="append", help="a prompt to climb from (repeatable; default: 7 prompts)")
    args = ap.parse_args(argv)
    module_name, _, fn = args.reward.partition(":")
    try:
        module = importlib.import_module(module_name)
        reward = getattr(module, fn or "gold_reward")
    except (ImportError, AttributeError) as e:
        print(f"--reward {args.reward}: cannot load it ({e}); give module:function", file=sys.stderr)
        return 2
    bound_fn = getattr(module, "gold_reward_bound", None)
    bound = bound_fn(args.cap) if bound_fn else None
    finds = search(reward, tuple(args.prompt or PROMPTS), steps=args.steps, restarts=args.restarts, cap=args.cap,
                   seed=args.seed)
    print(f"stated maximum: {bound if bound is not None else 'none stated'}")
    bad = 0
    for f in finds:
        verdict = reader_verdict(f.prompt, f.completion)
        failed = [k for k, ok in verdict.items() if not ok]
        over = bound is not None and f.reward > bound + 1e-9
        near_top = bound is not None and f.reward >= bound - 0.1
        bad += over or (near_top and bool(failed))
        flag = " ABOVE THE STATED MAXIMUM" if over else ""
        print(f"{f.reward:7.3f}  {f.prompt} | {f.completion}{flag}")
        print(f"         reader: {'ok' if not failed else 'fails ' + ', '.join(failed)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
