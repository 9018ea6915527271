"""Time to quality of the VAE on MNIST: train with the default config, then the IWAE bits/dim.

Trains ``configs/vae_mnist.toml`` through the genzoo Trainer (the same path as ``genzoo train``),
then measures on every test image: the importance-weighted bound with ``--k`` samples
(Burda et al. 2016) in bits/dim, and the ELBO (k = 1) for comparison. Reports training time
(optimizer steps only, as the Trainer counts it), evaluation time, peak resident memory, and writes
one JSON record next to a sample grid.

    GENZOO_DATA=../shared/data flock /tmp/genzoo-cpu.lock python bench/vae_mnist.py \
        [--k 100] [--set train.max_steps=...] [--json bench/results/vae_mnist.json]
    ... python bench/vae_mnist.py --from-run runs/bench-vae_mnist-...   # measure a trained run again

Run it under the shared lock: another job on the same two cores halves the number of steps that
fit in the time budget. With the data here the numbers are "MNIST-5k train / full MNIST test".
"""

from __future__ import annotations

import sys

import torch

from genzoo.metrics import heldout_nll
from harness import bench_arguments, new_record, results_path, trained_or_loaded, write_record  # bench/harness.py


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
    parser = bench_arguments("vae_mnist", __doc__)
    parser.add_argument("--k", type=int, default=100, help="importance samples of the IWAE bound")
    parser.add_argument("--eval-batch", type=int, default=100, help="test images per log_prob call")
    args = parser.parse_args()
    model, data, info = trained_or_loaded(args)
    record, out = new_record("vae_mnist", info), results_path(args)
    record.update(evaluate(model, data, args.k, args.eval_batch))
    samples = model.sample(64, generator=torch.Generator().manual_seed(0), **record["sample_options"])
    record["samples"] = str(data.spec.save_samples(samples, out.with_suffix(".png")))
    record["overrides"] = args.overrides
    write_record(record, out, f"IWAE-{args.k} {record['iwae_bits_per_dim']:.4f} bits/dim (ELBO "
                              f"{record['elbo_bits_per_dim']:.4f}) on {record['test_images']:,} test images, "
                              f"evaluated in {record['eval_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
