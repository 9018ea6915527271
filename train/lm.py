"""Train the character-level transformer on Shakespeare and print a generated passage.

    python train/lm.py                                       # the shipped Shakespeare corpus
    python train/lm.py configs/lm_tinyshakespeare.toml       # char-rnn's tiny Shakespeare
    python train/lm.py --set train.max_minutes=1 --prompt "ROMEO:"
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from genzoo.cli import make_trainer, train_arguments
from genzoo.trainer import mean_metrics

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "lm_shakespeare.toml"


def main() -> None:
    parser = train_arguments(str(CONFIG))
    parser.add_argument("--prompt", default="ROMEO:", help="how the printed passage begins")
    parser.add_argument("--val-batches", type=int, default=200, help="validation batches to average")
    args = parser.parse_args()
    trainer = make_trainer(args)
    run = trainer.fit()
    if run.interrupted:
        return
    model, data, cfg = run.sampler.eval(), trainer.data, trainer.cfg
    batches = data.val_batches(cfg.data.batch_size, args.val_batches)
    val = mean_metrics([model.evaluate((x.to(model.device), y.to(model.device))) for x, y in batches])
    (run.run_dir / "val.json").write_text(json.dumps({"batches": args.val_batches, **val}, indent=2) + "\n")
    print(f"validation: {val['nats_per_char']:.4f} nats/char, {val['bits_per_char']:.4f} bits/char "
          f"({args.val_batches} batches of {cfg.data.batch_size} x {cfg.data.block_size} characters)")
    options = {**cfg.sample, "prompt": args.prompt}
    ids = model.sample(1, generator=torch.Generator(model.device).manual_seed(0), **options)
    print(data.spec.decode(ids[0]))


if __name__ == "__main__":
    main()
