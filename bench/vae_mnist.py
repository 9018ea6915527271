"""Time to quality of the VAE on MNIST: train with the default config, then the IWAE bits/dim.

Trains ``configs/vae_mnist.toml`` through the genzoo Trainer (the same path as ``genzoo train``),
then measures on every test image: the importance-weighted bound with ``--k`` samples
(Burda et al. 2016) in bits/dim, and the ELBO (k = 1) for comparison. Reports training time
(optimizer steps only, as the Trainer counts it), evaluation time, peak resident memory, and writes
one JSON record next to a sample grid.

    GENZOO_DATA=../shared/data flock /tmp/genzoo-cpu.lock python bench/vae_mnist.py \
        [--k 100] [--set train.max_steps=...] [--json bench/results/vae_mnist.json]

Run it under the shared lock: another job on the same two cores halves the number of steps that
fit in the time budget. With the data here the numbers are "MNIST-5k train / full MNIST test".
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path

import torch

from genzoo.cli import make_trainer, train_arguments
from genzoo.metrics import heldout_nll
from genzoo.runtime import cpu_name, peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]


def evaluate(model: torch.nn.Module, data, k: int, batch_size: int) -> dict[str, float]:
    """IWAE-k and ELBO bits/dim on every test image; the seed makes the numbers repeatable."""
    model.eval()
    torch.manual_seed(0)
    iwae = heldout_nll(model, data.test_batches(batch_size), k=k)
    torch.manual_seed(0)
    elbo = heldout_nll(model, data.test_batches(batch_size), k=1)
    return {
        "test_images": iwae["examples"],
        "iwae_k": k,
        "iwae_bits_per_dim": iwae["bits_per_dim"],
        "iwae_nll_nats": iwae["nll_nats"],
        "elbo_bits_per_dim": elbo["bits_per_dim"],
        "eval_seconds": iwae["seconds"],
    }


def main() -> int:
    parser = train_arguments(str(ROOT / "configs" / "vae_mnist.toml"))
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--k", type=int, default=100, help="importance samples of the IWAE bound")
    parser.add_argument("--eval-batch", type=int, default=100, help="test images per log_prob call")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "vae_mnist.json"))
    args = parser.parse_args()
    args.out = args.out or f"runs/bench-vae_mnist-{time.strftime('%Y%m%d-%H%M%S')}"

    trainer = make_trainer(args)
    started = time.perf_counter()
    run = trainer.fit()
    wall_train = time.perf_counter() - started
    result = evaluate(run.sampling_model, trainer.data, args.k, args.eval_batch)
    grid = trainer.data.spec.save_samples(
        run.sampling_model.sample(64, generator=torch.Generator().manual_seed(0), **trainer.cfg.sample),
        Path(args.json).with_suffix(".png"),
    )
    result = {
        "benchmark": "vae_mnist",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{cpu_name()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "data": trainer.data.source,
        "steps": run.step,
        "train_seconds": trainer.elapsed,
        "train_wall_seconds": wall_train,
        **result,
        "peak_rss_mb": peak_rss_mb(),
        "samples": str(grid),
        "run_dir": str(run.run_dir),
        "overrides": args.overrides,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"vae_mnist: IWAE-{args.k} {result['iwae_bits_per_dim']:.4f} bits/dim "
        f"(ELBO {result['elbo_bits_per_dim']:.4f}) on {result['test_images']:,} test images | "
        f"{run.step} steps in {trainer.elapsed:.0f} s | eval {result['eval_seconds']:.0f} s | "
        f"peak RSS {result['peak_rss_mb']:.0f} MB | {args.json}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
