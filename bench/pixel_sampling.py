"""Sampling time of a trained pixel transformer, with and without the key-value cache, side by side.

Draws ``--n`` images in one batch each way from the same generator, checks they are the same images,
and prints (and appends to bench/results/pixel_sampling.jsonl) milliseconds per image and the peak RSS.

    GENZOO_DATA=/work/shared/data flock /tmp/bench.lock python bench/pixel_sampling.py runs/pixel_mnist --n 16
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import torch

from genzoo.checkpoint import load_model
from genzoo.runtime import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]


def timed_sample(model, n: int, seed: int, **options) -> tuple[torch.Tensor, float]:
    started = time.perf_counter()
    x = model.sample(n, generator=torch.Generator().manual_seed(seed), **options)
    return x, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--n", type=int, default=16, help="images per batch, the same batch both ways")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--uncached", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "pixel_sampling.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.run)[0].eval()
    load_before = os.getloadavg()[0]
    cached, seconds_cached = timed_sample(model, args.n, 0)
    result = {"run": args.run, "n": args.n, "threads": args.threads, "group": model.cfg.group,
              "ms_per_image_cached": round(1000 * seconds_cached / args.n, 1)}
    if args.uncached:
        rerun, seconds_rerun = timed_sample(model, args.n, 0, kv_cache=False)
        result.update(ms_per_image_uncached=round(1000 * seconds_rerun / args.n, 1),
                      speedup=round(seconds_rerun / seconds_cached, 2), same_images=torch.equal(cached, rerun))
        differ = (cached != rerun).flatten(1)  # (n, D): float rounding can flip a draw, then the rest follows
        result.update(images_differing=int(differ.any(1).sum()),
                      first_differing_pixels=[int(d.nonzero()[0]) for d in differ if d.any()])
    result.update(peak_rss_mb=round(peak_rss_mb(), 1), load_before=round(load_before, 2),
                  load_after=round(os.getloadavg()[0], 2),
                  date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"))
    print(json.dumps(result))
    with open(args.json, "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
