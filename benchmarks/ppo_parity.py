"""PPO parity: TRL 1.12's PPO (`ppo_trl`) against our own `ppo`, recorded as a committed fixture.

    OMP_NUM_THREADS=1 bench run suites/controlled-ppo-parity.toml --no-report --workers 2
    python benchmarks/ppo_parity.py [--results results/controlled-ppo-parity] [--out tests/data/ppo_parity.json]

Reads the suite's run folders (default budget and 4x, three seeds each) and writes, per (algorithm, budget): every
seed's final gold reward, win rate, KL, length and grammatical fraction, steps and FLOPs by component, and its
curve through training (the same metrics at each generation checkpoint, by budget fraction); then, per metric, the
seed mean and its 95% t-interval (t_{0.975, S-1}·SD/√S), and whether our seed mean lies inside TRL's interval.
The world (its format, settings, key and revisions) and the package versions are recorded: the parity is a
comparison of two implementations on that one stated world, so it stays valid when the code's world changes
(tests/test_ppo.py keys on the fixture's own format); TRL's PPO left in 1.13, so re-recording needs trl 1.12.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("gold_reward", "win_rate", "kl", "length", "grammatical_fraction")
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def interval(values: list[float]) -> dict:
    """Seed mean with a 95% t-interval (none for a single seed)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": mean, "lo": None, "hi": None, "values": values}
    half = T975.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "values": values}


def world_format() -> int:
    """The controlled world's build format (bumped when the build changes what it produces, e.g. its gold reward)."""
    from bench.worlds.controlled.build import WORLD_FORMAT

    return WORLD_FORMAT


def curve(run: Path) -> list[dict]:
    with open(run / "curves.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "heldout" and r.get("win_rate")]
    return [{"budget_fraction": round(float(r["budget_fraction"]), 4), "step": int(r["step"]),
             **{m: (float(r[m]) if r.get(m) not in (None, "") else None) for m in METRICS}} for r in rows]


def collect(results: Path) -> dict:
    groups: dict[str, dict] = {}
    world = packages = None
    for run in sorted((results / "runs").iterdir()):
        if not (run / "metrics.json").is_file():
            continue  # still running
        config = json.loads((run / "config.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        if metrics.get("status") != "finished":
            continue
        world = world or {"format": world_format(), "settings": config["world"], "key": config.get("world_key"),
                          "revisions": config.get("world_revisions")}
        packages = packages or config["provenance"]["packages"]
        budget = config["budget"]["flops"]
        key = f"{config['algorithm']}|budget={budget:g}"
        g = groups.setdefault(key, {"algorithm": config["algorithm"], "budget_flops": budget,
                                    "params": config["params"], "seeds": {}})
        g["seeds"][str(config["seed"])] = {
            **{m: metrics.get(m) for m in METRICS}, "steps": metrics["steps"], "flops": metrics["flops"],
            "flops_by_component": metrics["compute"]["flops_by_component"], "curve": curve(run),
            "samples": [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()[:3]],
            "git": config["provenance"].get("git"),
        }
    for g in groups.values():
        seeds = list(g["seeds"].values())
        g["summary"] = {m: interval([s[m] for s in seeds]) for m in METRICS + ("steps",)}
    return {"world": world, "packages": packages, "groups": groups}


def compare(data: dict) -> list[dict]:
    """Per budget and metric: TRL's interval, our mean, and whether it lies inside."""
    rows = []
    for key, g in sorted(data["groups"].items()):
        if g["algorithm"] != "ppo":
            continue
        trl = data["groups"].get(key.replace("ppo|", "ppo_trl|"))
        if trl is None:
            continue
        for m in METRICS + ("steps",):  # steps: what the budget bought (a cost, not a result: not checked)
            t, o = trl["summary"][m], g["summary"][m]
            inside = None if m == "steps" else (t["lo"] is not None and t["lo"] <= o["mean"] <= t["hi"])
            rows.append({"budget_flops": g["budget_flops"], "metric": m, "trl": t, "ours": o, "inside": inside})
    return rows


def table(rows: list[dict]) -> str:
    def fmt(s):
        ci = f" [{s['lo']:.3g}, {s['hi']:.3g}]" if s["lo"] is not None else ""
        return f"{s['mean']:.3g}{ci} ({', '.join(f'{v:.3g}' for v in s['values'])})"

    out = ["| budget | metric | TRL 1.12 ppo_trl: mean [95% t-interval] (seeds) | ours: mean [interval] (seeds) | inside |",
           "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['budget_flops']:g} | {r['metric']} | {fmt(r['trl'])} | {fmt(r['ours'])} | "
                   f"{ {True: 'yes', False: 'NO', None: '—'}[r['inside']] } |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(ROOT / "results" / "controlled-ppo-parity"))
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "ppo_parity.json"))
    args = ap.parse_args()
    data = collect(Path(args.results))
    if not any(g["algorithm"] == "ppo_trl" for g in data["groups"].values()):
        # TRL's PPO no longer runs (trl >= 1.13, issue 26): keep its readings recorded on trl 1.12, on the same world
        old = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
        if (old.get("world") or {}).get("key") != (data.get("world") or {}).get("key"):
            raise SystemExit(f"{args.out}: TRL 1.12's PPO readings were recorded on another controlled world (key "
                             f"{(old.get('world') or {}).get('key')}); they cannot be re-recorded without trl 1.12")
        data["groups"].update({k: g for k, g in old["groups"].items() if g["algorithm"] == "ppo_trl"})
        data["packages_ours"], data["packages"] = data["packages"], old["packages"]  # "packages": TRL's recording
    data["comparison"] = compare(data)
    data["note"] = ("Recorded by benchmarks/ppo_parity.py from suites/controlled-ppo-parity.toml (3 seeds; trl 1.12 "
                    "installed): a comparison of the two implementations on the world it names (world.format, "
                    "world.key); it stays valid when the code's world changes, and re-recording needs trl 1.12.")
    Path(args.out).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(table(data["comparison"]))


if __name__ == "__main__":
    main()
