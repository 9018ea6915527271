"""Train the character-level transformer on Shakespeare and print a generated passage.

    python train/lm.py                                       # the shipped Shakespeare corpus
    python train/lm.py configs/lm_tinyshakespeare.toml       # char-rnn's tiny Shakespeare
    python train/lm.py --set train.max_minutes=1 --prompt "ROMEO:"
"""

from __future__ import annotations

from pathlib import Path

import torch

from genzoo.cli import make_trainer, train_arguments
from genzoo.report import evaluate_run, headline

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "lm_shakespeare.toml"


def main() -> None:
    parser = train_arguments(str(CONFIG))
    parser.add_argument("--prompt", default="ROMEO:", help="how the printed passage begins")
    args = parser.parse_args()
    trainer = make_trainer(args)
    run = trainer.fit()
    if run.interrupted:
        return
    model, data, cfg = run.sampling_model.eval(), trainer.data, trainer.cfg
    print(headline(evaluate_run(run.run_dir, data_root=args.data_root)))
    options = {**cfg.sample, "prompt": args.prompt}
    ids = model.sample(1, generator=torch.Generator(model.device).manual_seed(0), **options)
    print(data.spec.decode(ids[0]))


if __name__ == "__main__":
    main()
