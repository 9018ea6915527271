"""Time per training step with 1 and with N data-parallel processes under torchrun (Gloo on the CPU).

For each process count the same config trains the same number of steps with the same global batch
(``data.batch_size``), each process with ``cores / N`` torch threads, so 1 process x 2 threads is
compared with 2 processes x 1 thread on a 2-core machine. The time is the trainer's own training-step
time (``time_s`` of the last record in ``metrics.jsonl``: the slowest process's, validation and
checkpoints excluded), divided by the steps; process start-up is reported apart.

    GENZOO_DATA=../shared/data flock /tmp/bench.lock python bench/distributed_cpu.py \
        [--config configs/vae_mnist.toml] [--steps 300] [--processes 1 2] [--json bench/results/distributed_cpu.json]

On one machine's cores this measures the cost of the all-reduce and of splitting the batch, not a
speed-up: two processes share the same two cores that one process already uses. The point of
data parallelism is more devices; this is the check that the machinery costs little.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from harness import ROOT, new_record, write_record  # bench/harness.py


def one_run(config: str, steps: int, processes: int, out: Path, threads: int) -> dict:
    run = out / f"{processes}proc"
    sets = [f"train.max_steps={steps}", "train.max_minutes=0", "train.eval_every=100000",
            "train.sample_every=100000", "train.checkpoint_every=100000", f"train.log_every={steps}",
            "train.device=cpu", "data.download=false"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "genzoo", "train", config, "--out", str(run)] + [a for s in sets for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"][-1]
    return {"processes": processes, "threads_per_process": threads, "steps": train["step"],
            "train_seconds": train["time_s"], "ms_per_step": 1000 * train["time_s"] / train["step"],
            "final_train_loss": train["loss"], "wall_seconds": round(wall, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "vae_mnist.toml"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=f"runs/bench-distributed-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "distributed_cpu.json"))
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    runs = [one_run(args.config, args.steps, n, Path(args.out), max(1, cores // n)) for n in args.processes]
    record = new_record("distributed_cpu", {"config": args.config, "cores": cores, "runs": runs})
    for r in runs:
        print(f"{r['processes']} process(es) x {r['threads_per_process']} thread(s): {r['ms_per_step']:.1f} ms/step "
              f"over {r['steps']} steps (wall {r['wall_seconds']} s with start-up)")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_record(record, path, " vs ".join(f"{r['ms_per_step']:.1f}" for r in runs) + " ms/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
