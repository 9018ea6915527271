"""Measured fp32 matmul peak of this machine: the ceiling that model throughput is compared against.

Times large square fp32 matmuls (``torch.mm``) on ``--threads`` threads (default 2, the genzoo CPU
budget) and reports the best GFLOP/s over several sizes, counting 2 * n^3 flops per n x n matmul.

    flock /tmp/genzoo-cpu.lock python bench/matmul_peak.py [--threads 2] [--json out.json]

Run it under the shared lock: another job on the same cores halves the number.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time

import torch


def gflops(n: int, seconds_min: float = 1.0) -> float:
    """Best-of-repeats GFLOP/s of an (n, n) @ (n, n) fp32 matmul, after a warm-up."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    for _ in range(3):  # warm up caches, thread pool and MKL's kernel choice
        torch.mm(a, b, out=out)
    best, spent = float("inf"), 0.0
    while spent < seconds_min:
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return 2 * n**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 3072, 4096])
    parser.add_argument("--json", default="", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {n: gflops(n) for n in args.sizes}
    for n, g in results.items():
        print(f"n={n:5d}  {g:7.1f} GFLOP/s")
    peak = max(results.values())
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s on {args.threads} threads (torch {torch.__version__})")
    if args.json:
        record = {
            "peak_gflops": round(peak, 1),
            "by_size": {str(n): round(g, 1) for n, g in results.items()},
            "threads": args.threads,
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
