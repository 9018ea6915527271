"""The character LM's sampling with and without the key-value cache: time, tokens, held-out loss.

    GENZOO_DATA=/work/shared/data flock /tmp/bench.lock python bench/kv_cache.py RUN [RUN ...]

For each trained LM run, side by side (the pixel transformer's cache: ``bench/pixel_sampling.py``):

- **time**: one sample of 1,000 characters, cached and uncached, the best of ``--repeats``
  alternating timings each; and the same for a batch of ``--batch``;
- **the same tokens**: with one generator seed, the share of positions where the cached and the
  uncached sample agree, within the block (they must all agree) and over the whole sample (past the
  block the cache slides and the uncached path crops, so they part);
- **what sliding costs**: the held-out nats/char of every character past the first
  block of ``--length``-character validation windows, predicted (a) the way the uncached sampler
  does, from the last ``block_size`` characters rerun, and (b) the way the cached sampler does, by a
  sliding window of keys and values.

Writes ``bench/results/kv_cache.json`` (``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for harness, beside this file

from harness import ROOT, new_record  # noqa: E402

from genzoo.checkpoint import load_model  # noqa: E402
from genzoo.data import TextData  # noqa: E402
from genzoo.models.transformer import KVCache, TransformerLM  # noqa: E402
from genzoo.runtime import peak_rss_mb  # noqa: E402
from genzoo.sources import load_data  # noqa: E402


def timed_sample(model, n: int, kv_cache: bool, seed: int = 0, **options) -> tuple[torch.Tensor, float]:
    generator = torch.Generator(model.device).manual_seed(seed)
    started = time.perf_counter()
    out = model.sample(n, generator=generator, kv_cache=kv_cache, **options)
    return out, time.perf_counter() - started


def best_times(model, n: int, repeats: int, **options) -> dict[str, float]:
    """The best of ``repeats`` timings of each path, alternating so that both see the same machine load."""
    times = {True: [], False: []}
    for _ in range(repeats):
        for kv_cache in (True, False):
            times[kv_cache].append(timed_sample(model, n, kv_cache, **options)[1])
    cached, uncached = min(times[True]), min(times[False])
    return {"n": n, "cached_seconds": cached, "uncached_seconds": uncached, "speedup": uncached / cached}


def agreement(model, n: int, within: int, **options) -> dict[str, float]:
    """Share of positions where the cached and uncached samples of one seed agree: in the first
    ``within`` tokens, and overall."""
    cached, _ = timed_sample(model, n, True, seed=1, **options)
    uncached, _ = timed_sample(model, n, False, seed=1, **options)
    same = (cached.reshape(n, -1) == uncached.reshape(n, -1)).float()
    return {"n": n, "within_block": same[:, :within].mean().item(), "whole_sample": same.mean().item()}


def sliding_and_cropped_nats(model: TransformerLM, data: TextData, length: int, n_windows: int) -> dict[str, float]:
    """Held-out nats/char of characters block_size .. length-1 of validation windows, by both sampler paths."""
    block = model.cfg.block_size
    starts = torch.linspace(0, len(data.val_ids) - length - 1, n_windows).long()
    ids = torch.stack([data.val_ids[s : s + length + 1].long() for s in starts])  # (W, L + 1)
    targets = ids[:, block : length + 1]  # (W, L - block + 1): the characters predicted past the first block
    with torch.no_grad():
        cache = KVCache(model.cfg.n_layer, block)
        sliding = [model(ids[:, :block], cache)[:, -1]]
        sliding += [model(ids[:, t : t + 1], cache)[:, -1] for t in range(block, length)]
        sliding_logits = torch.stack(sliding, dim=1)  # (W, L - block + 1, V)
        cropped_logits = torch.stack([model(ids[:, t - block + 1 : t + 1])[:, -1] for t in range(block - 1, length)], dim=1)
    nats = {name: F.cross_entropy(logits.flatten(0, 1), targets.flatten()).item()
            for name, logits in (("sliding_window", sliding_logits), ("cropped_rerun", cropped_logits))}
    return {"windows": n_windows, "length": length, "predicted_per_window": targets.shape[1], **nats}


def measure(run: str, args: argparse.Namespace) -> dict:
    model, cfg, _ = load_model(run)
    if not isinstance(model, TransformerLM):
        raise SystemExit(f"{run} is a {cfg.family} run: this measures the character LM (pixel: bench/pixel_sampling.py)")
    model.eval()
    record = {"run": run, "family": cfg.family, "parameters": sum(p.numel() for p in model.parameters())}
    options = {"max_new_tokens": 1000, "temperature": 0.8}
    record["one_sample_1000_chars"] = best_times(model, 1, args.repeats, **options)
    record[f"batch_{args.batch}_1000_chars"] = best_times(model, args.batch, 1, **options)
    record["same_tokens"] = agreement(model, args.batch, model.cfg.block_size, **options)
    data = load_data(cfg.data, args.data_root)
    record["heldout_past_the_block"] = sliding_and_cropped_nats(model, data, args.length, args.windows)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="trained character-LM run folders")
    parser.add_argument("--repeats", type=int, default=3, help="timings of each path for one sample")
    parser.add_argument("--batch", type=int, default=16, help="samples in the batched timing and the agreement")
    parser.add_argument("--length", type=int, default=512, help="validation window length for the held-out loss")
    parser.add_argument("--windows", type=int, default=32, help="how many validation windows")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "kv_cache.json"))
    args = parser.parse_args()
    record = new_record("kv_cache", {"runs": [measure(run, args) for run in args.runs]})
    record["peak_rss_mb"] = peak_rss_mb()
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
