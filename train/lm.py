"""Train the character-level transformer on Shakespeare and print a generated passage.

    python train/lm.py                                       # the shipped Shakespeare corpus
    python train/lm.py configs/lm_tinyshakespeare.toml       # char-rnn's tiny Shakespeare
    python train/lm.py configs/lm_python.toml --prompt "def "  # Python's standard library (the code model)
    python train/lm.py --set train.max_minutes=1 --prompt "ROMEO:"
"""

from __future__ import annotations

from pathlib import Path

import torch

from genzoo.checkpoint import build_model
from genzoo.recipe import config_and_run_dir, start_or_resume, train_arguments
from genzoo.report import evaluate_run, headline
from genzoo.sources import load_data
from genzoo.trainer import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "lm_shakespeare.toml"


def main() -> None:
    parser = train_arguments(str(CONFIG))
    parser.add_argument("--prompt", default="ROMEO:", help="how the printed passage begins")
    args = parser.parse_args()
    cfg, run_dir = config_and_run_dir(args)                   # 1. config: the file + --set, or the resumed run's
    data = load_data(cfg.data, args.data_root)                 # 2. data
    model = build_model(cfg, data.spec, seed=cfg.train.seed)   # 3. model: the seed fixes its initial weights
    trainer = Trainer(model, data, cfg, run_dir)               # 4. trainer
    start_or_resume(trainer, args.resume)                      #    continuing --resume's run from its last.pt
    run = trainer.fit()
    if run.interrupted or not run.main_process:  # under torchrun, rank 0 alone goes on
        return
    model = run.sampling_model.eval()
    print(headline(evaluate_run(run.run_dir, data_root=args.data_root)))
    options = {**cfg.sample, "prompt": args.prompt}
    ids = model.sample(1, generator=torch.Generator(model.device).manual_seed(0), **options)
    print(data.spec.decode(ids[0]))


if __name__ == "__main__":
    main()
