"""How fast the evaluator scores 10,000 samples, and the floor and ceilings of every metric.

    python bench/evaluator.py --data-root ../shared/data [--dataset mnist] [-n 10000]

Times ``image_metrics`` (features of the samples and of the whole test set, FID, precision/recall,
recognizability, coverage) on ``n`` images (the issue's target: under 1 minute for 10,000 on 2 CPU
cores), then prints the reference points every report carries: real training images (the floor),
Gaussian noise and blank images (ceilings), each ``n`` images (at most all training images) scored
against the whole test set. Prints one JSON record.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time

import torch

from genzoo.config import DataConfig
from genzoo.evaluator import load_evaluator
from genzoo.metrics import image_metrics, reference_points
from genzoo.pixels import from_uint8
from genzoo.runtime import machine
from genzoo.sources import load_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root")
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
    parser.add_argument("-n", type=int, default=10_000)
    args = parser.parse_args()
    data = load_data(DataConfig(name=args.dataset, download=False), args.data_root)
    evaluator = load_evaluator(args.dataset)
    test, train = from_uint8(data.test_x), from_uint8(data.train_x)
    # Stand-in samples: n training images drawn with replacement and distorted by 8-bit noise, so the
    # features are as varied as a model's samples (the time does not depend on what they look like).
    generator = torch.Generator().manual_seed(0)
    pick = torch.randint(len(train), (args.n,), generator=generator)
    samples = (train[pick] + 0.1 * torch.randn(args.n, *train.shape[1:], generator=generator)).clamp(-1, 1)
    started = time.perf_counter()
    metrics = image_metrics(samples, test, evaluator)
    seconds = time.perf_counter() - started
    record = {
        "date": datetime.date.today().isoformat(), "machine": machine(), "torch": torch.__version__,
        "data": data.source, "evaluator": evaluator.name, "evaluator_accuracy": evaluator.accuracy,
        "n": args.n, "image_metrics_seconds": round(seconds, 2), "stand_in_samples": metrics,
        "references": reference_points(train, test, evaluator, args.n),
    }
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
