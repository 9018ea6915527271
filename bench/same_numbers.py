"""Does a refactoring change any number? Train every default config for a few steps at two git
revisions, evaluate both runs the same way, and compare every number they write.

A full benchmark takes minutes to tens of minutes per family and its step count depends on how fast
the machine is (the configs cap wall time), so it cannot tell a behaviour change from a slower CPU.
This check can: on one machine, PyTorch's CPU kernels are deterministic for a fixed seed, so a change
that keeps behaviour gives identical validation metrics, sample scores and likelihoods, while one that
alters a loss, an initialisation, a random draw or a sampler shows up as a difference.

    git worktree add /tmp/genzoo-old <REV>                   # the revision to compare against
    GENZOO_DATA=../shared/data flock /tmp/genzoo-cpu.lock python bench/same_numbers.py /tmp/genzoo-old

Each side runs ``genzoo train CONFIG --set train.max_steps=N ...`` then ``genzoo eval RUN -n 500``
with ``PYTHONPATH`` pointing at its own checkout. Compared: every record of ``metrics.jsonl`` except
times and memory, and every number of ``eval.json`` except times, dates, memory and paths. Exit
status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Steps (and likelihood options) chosen so that each side takes a few minutes on a 2-core CPU; one
# validation at the end.
RUNS = {
    "vae_mnist": (200, ["--log-prob", "k=4"]),
    "ddpm_mnist": (100, ["--log-prob", "timesteps=2"]),
    "gan_mnist": (200, []),
    "flow_mnist": (100, []),
    "ebm_mnist": (100, []),
    "lm_shakespeare": (100, []),
}
VARYING = {"time_s", "peak_memory_mb", "seconds", "date", "machine", "torch", "run", "data",
           "train_seconds", "train_peak_memory_mb", "eval_peak_memory_mb", "ms_per_image",
           "seconds_per_1000_chars", "sampling_seconds"}


def run_side(checkout: Path, config: str, steps: int, eval_options: list[str], out: Path) -> Path:
    """Train and evaluate ``config`` with the genzoo of ``checkout``; the run folder."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    run = out / config
    overrides = [f"train.max_steps={steps}", f"train.eval_every={steps}", f"train.sample_every={steps}",
                 f"train.checkpoint_every={steps}", "train.max_minutes=0"]
    train = [sys.executable, "-m", "genzoo", "train", f"configs/{config}.toml", "--out", str(run)]
    subprocess.run(train + [a for o in overrides for a in ("--set", o)], cwd=checkout, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    evaluate = [sys.executable, "-m", "genzoo", "eval", str(run), "-n", "500", *eval_options]
    subprocess.run(evaluate, cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return run


def numbers(value: object, prefix: str = "") -> dict[str, float]:
    """Every number in a JSON value, by its dotted path, leaving out the keys that vary run to run."""
    if isinstance(value, dict):
        found: dict[str, float] = {}
        for key, item in value.items():
            if key not in VARYING:
                found.update(numbers(item, f"{prefix}{key}."))
        return found
    if isinstance(value, list):
        found = {}
        for i, item in enumerate(value):
            found.update(numbers(item, f"{prefix}{i}."))
        return found
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {prefix.rstrip("."): float(value)}
    return {}


def run_numbers(run: Path) -> dict[str, float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {**numbers(records, "metrics."), **numbers(json.loads((run / "eval.json").read_text()), "eval.")}


def differences(old: dict[str, float], new: dict[str, float]) -> list[str]:
    lines = [f"  only in one: {key}" for key in sorted(set(old) ^ set(new))]
    for key in sorted(set(old) & set(new)):
        a, b = old[key], new[key]
        if not (a == b or (math.isnan(a) and math.isnan(b))):
            lines.append(f"  {key}: {a!r} -> {b!r}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="a checkout of the revision to compare against (git worktree add ...)")
    parser.add_argument("--new", default=str(ROOT), help="the checkout to check (default: this one)")
    parser.add_argument("--out", default="runs/same-numbers", help="where both sides' runs go")
    parser.add_argument("--configs", default=",".join(RUNS), help="which default configs, comma-separated")
    args = parser.parse_args()
    out, changed = Path(args.out).absolute(), 0
    for config in args.configs.split(","):
        steps, eval_options = RUNS[config]
        old = run_numbers(run_side(Path(args.old).absolute(), config, steps, eval_options, out / "old"))
        new = run_numbers(run_side(Path(args.new).absolute(), config, steps, eval_options, out / "new"))
        lines = differences(old, new)
        changed += bool(lines)
        print(f"{config}: {len(old)} numbers, {'identical' if not lines else f'{len(lines)} differ'}", flush=True)
        print("\n".join(lines[:20]), end="\n" if lines else "", flush=True)
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
