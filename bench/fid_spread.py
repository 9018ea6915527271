"""How much does FID-MNIST move with the sample alone? Random subsets of the real MNIST-5k training
digits, each scored against the full test set exactly as a model's samples are (genzoo's evaluator
features). A difference between two models smaller than the range at their n is not evidence.

    GENZOO_DATA=../shared/data python bench/fid_spread.py            # writes bench/results/fid_spread.json

Also: precision and recall of the same subsets (their spread, likewise).
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import torch

from genzoo.config import DataConfig
from genzoo.evaluator import load_evaluator
from genzoo.metrics import gaussian_frechet, mean_and_covariance, precision_recall
from genzoo.runtime import cpu_name
from genzoo.sources import load_data

ROOT = Path(__file__).resolve().parents[1]


def summary(values: list[float]) -> dict[str, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return {"min": float(t.min()), "max": float(t.max()), "mean": float(t.mean()), "sd": float(t.std())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "fid_spread.json"))
    args = parser.parse_args()
    data = load_data(DataConfig(name="mnist", download=False))
    evaluator = load_evaluator("mnist")
    train, _ = evaluator.embed(data.train_x)
    test, _ = evaluator.embed(data.test_x)
    test_stats = mean_and_covariance(test)
    generator = torch.Generator().manual_seed(0)
    record = {"date": datetime.date.today().isoformat(), "machine": cpu_name(), "train": len(train),
              "test": len(test), "draws": args.draws, "sizes": {}}
    for n in args.sizes:
        fids, precisions, recalls = [], [], []
        for _ in range(args.draws):
            subset = train[torch.randperm(len(train), generator=generator)[:n]]
            fids.append(gaussian_frechet(*test_stats, *mean_and_covariance(subset)))
            precision, recall = precision_recall(test, subset)
            precisions.append(precision)
            recalls.append(recall)
        record["sizes"][str(n)] = {"fid": summary(fids), "precision": summary(precisions), "recall": summary(recalls)}
        fid = record["sizes"][str(n)]["fid"]
        print(f"n = {n:>5}: FID-MNIST {fid['min']:.1f} to {fid['max']:.1f} (mean {fid['mean']:.1f}, sd {fid['sd']:.1f}); "
              f"precision {min(precisions):.3f} to {max(precisions):.3f}, recall {min(recalls):.3f} to {max(recalls):.3f}")
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
