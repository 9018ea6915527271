"""Time to quality of the character-level LM on a 2-core CPU.

Trains ``configs/lm_tinyshakespeare.toml`` through genzoo's own ``Trainer`` and data module, then
measures the validation loss on 200 fixed batches of the last 10% of tiny Shakespeare (nanoGPT's
split). Reference: nanoGPT's documented CPU recipe (4 layers, 128 wide, context 64, batch 12,
2,000 iterations, lr 1e-3) reaches 1.886 in about 140 s on the same 2 cores.

    GENZOO_DATA=/work/shared/data flock /tmp/genzoo-cpu.lock python bench/lm_cpu.py

What is timed: the training loop from its first step to its last (data batches, forward, backward,
clipping, optimizer and schedule steps, logging), by the wall clock. The in-loop validation, sample
and checkpoint intervals are pushed past the last step, so none of them happen inside the timed loop.
Throughput counts 6 N + 12 L T C flops per trained token (N parameters, L layers, context T,
width C; the estimate of Kaplan et al. 2020 plus attention, as in PaLM's appendix B and nanoGPT's
estimate_mfu), compared with this machine's fp32 matmul peak measured by bench/matmul_peak.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for matmul_peak, beside this file

from matmul_peak import gflops as matmul_gflops  # noqa: E402

from genzoo.checkpoint import build_model  # noqa: E402
from genzoo.config import config_to_dict, load_config  # noqa: E402
from genzoo.sources import load_data  # noqa: E402
from genzoo.trainer import Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NEVER = 10**9  # an interval no run reaches: no eval, samples or checkpoints inside the timed loop
NANOGPT_CONTEXT = 64  # nanoGPT's CPU recipe trains and evaluates with 64 characters of context


class TimedTrainer(Trainer):
    """The genzoo Trainer, noting the wall clock when the training loop ends (before the final eval)."""

    def _finish(self) -> None:
        self.loop_end = time.perf_counter()
        super()._finish()


def flops_per_token(model: torch.nn.Module) -> float:
    cfg = model.cfg
    n_params = sum(p.numel() for p in model.parameters())  # tied embedding counted once
    return 6 * n_params + 12 * cfg.n_layer * cfg.block_size * cfg.n_embd


def evaluate(model: torch.nn.Module, data, batch_size: int, n_batches: int) -> tuple[float, float]:
    """Mean validation loss (nats/char) over the full context, and over the first 64 positions only.

    The causal mask makes positions < 64 of a window see at most 64 characters, so the second
    number is what a context-64 model like nanoGPT's CPU recipe is measured on.
    """
    model.eval()
    full, short = 0.0, 0.0
    with torch.no_grad():
        for x, y in data.val_batches(batch_size, n_batches):
            log_p = F.log_softmax(model(x), dim=-1).gather(-1, y[..., None]).squeeze(-1)  # (B, T)
            full += -log_p.mean().item()
            short += -log_p[:, :NANOGPT_CONTEXT].mean().item()
    return full / n_batches, short / n_batches


def main() -> None:
    parser = argparse.ArgumentParser(description="Time to quality of the char-level LM on CPU.")
    parser.add_argument("--config", default=str(ROOT / "configs" / "lm_tinyshakespeare.toml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-root", default=None, help="default: $GENZOO_DATA, then ~/.cache/genzoo")
    parser.add_argument("--eval-batches", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="", help="run folder (default: a temporary one)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "lm_cpu.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    intervals = [f"train.{k}={NEVER}" for k in ("eval_every", "sample_every", "checkpoint_every")]
    finish = ["train.device=cpu", f"train.eval_batches={args.eval_batches}", "train.n_samples=2"]
    cfg = load_config(args.config, args.overrides + intervals + finish)
    data = load_data(cfg.data, args.data_root)
    model = build_model(cfg, data.spec, seed=cfg.train.seed)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = TimedTrainer(model, data, cfg, args.out or tmp)
        started = time.perf_counter()
        run = trainer.fit()
        train_wall = trainer.loop_end - started
        step_time = trainer.elapsed
    load_after = os.getloadavg()[0]  # about `threads` when nothing else ran: a check that the timing is clean
    val, val_64 = evaluate(model, data, cfg.data.batch_size, args.eval_batches)
    peak = max(matmul_gflops(n) for n in (512, 2048, 4096))

    tokens = run.step * cfg.data.batch_size * cfg.data.block_size
    tok_s = tokens / train_wall
    achieved = flops_per_token(model) * tok_s / 1e9
    result = {
        "val_loss": round(val, 4),
        "val_bits_per_char": round(val / math.log(2), 4),
        "val_loss_context_64": round(val_64, 4),
        "trainer_val_loss": round(run.best_val, 4),  # the Trainer's own final validation: should match
        "eval_batches": args.eval_batches,
        "eval_batch_size": cfg.data.batch_size,
        "train_wall_s": round(train_wall, 1),
        "train_step_time_s": round(step_time, 1),
        "steps": run.step,
        "tokens": tokens,
        "tokens_per_s": round(tok_s),
        "params": sum(p.numel() for p in model.parameters()),
        "flops_per_token": flops_per_token(model),
        "flops_formula": "6*N + 12*n_layer*block_size*n_embd per token (nanoGPT estimate_mfu / PaLM app. B)",
        "gflops": round(achieved, 1),
        "matmul_peak_gflops": round(peak, 1),
        "percent_of_peak": round(100 * achieved / peak, 1),
        "threads": torch.get_num_threads(),
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "data": data.source,
        "config": config_to_dict(cfg),
    }
    print(
        f"lm_cpu: val loss {val:.4f} nats/char ({val / math.log(2):.3f} bits/char; {val_64:.4f} at context 64) "
        f"after {run.step} steps in {train_wall:.1f} s | {tok_s:,.0f} tokens/s | {achieved:.1f} GFLOP/s = "
        f"{100 * achieved / peak:.0f}% of the {peak:.0f} GFLOP/s fp32 matmul peak | torch {torch.__version__}"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
