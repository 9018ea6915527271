"""Data-parallel training under torchrun: two CPU processes over Gloo train the same model as one process.

One ``torchrun --nproc_per_node=2`` run trains five small configs (tests/distributed_worker.py); then:

- **Deterministic families** (the flow on the moons, the LM without dropout): the two-process run's
  weights after K steps equal those of one plain process with the same global batch, within float
  rounding (the mean of two half-batch gradients is the full-batch gradient).
- **Families that draw noise in their step** (the VAE's z, the GAN's z with batch norm, two D steps
  and R1, the EBM's SGLD and replay buffer): every process draws its own noise, so no single
  process with one random stream can reproduce them. The reference is one process that runs the two
  ranks itself, one at a time in two threads, each with its own random stream, exchanging gradients
  where torch.distributed would (``Lockstep`` below stands in for Gloo's all-reduce and nothing else):
  the torchrun weights must equal that process's weights.
- In both cases the two ranks' parameters are identical to each other, and rank 0 alone wrote the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from genzoo import distributed
from genzoo.checkpoint import build_model, load_checkpoint
from genzoo.config import load_config
from genzoo.distributed import World
from genzoo.sources import load_data
from genzoo.trainer import Trainer
from helpers import CONFIGS

K = 4  # training steps
COMMON = [
    f"train.max_steps={K}", "train.warmup_steps=2", "train.max_minutes=0", "train.device=cpu",
    "train.eval_every=100", "train.sample_every=100", "train.checkpoint_every=100", "train.eval_batches=1",
    "train.log_every=1", "train.n_samples=2", "train.ema_decay=0.9", "data.batch_size=8", "data.download=false",
]
RUNS = {  # name -> (config, overrides)
    "vae": ("vae_mnist.toml", ["model.latent_dim=4", "model.encoder_channels=[4, 8]",
                               "model.decoder_channels=[8, 4]", "model.iw_samples=2"]),
    "gan": ("gan_mnist.toml", ["model.latent_dim=8", "model.channels=[8, 4]", "model.label_dim=4",
                               "model.n_critic=2", "model.r1_gamma=0.1", "train.grad_clip=1.0"]),
    "ebm": ("ebm_ring.toml", ["model.hidden=16", "model.depth=2", "model.buffer_size=64", "model.sgld_steps=3",
                              "model.conditional=true", "sample.mcmc_steps=2"]),
    "flow": ("flow_moons.toml", ["model.layers=2", "model.points_hidden=8"]),
    "lm": ("lm_shakespeare.toml", ["model.n_layer=1", "model.n_head=2", "model.n_embd=16", "model.block_size=16",
                                   "model.dropout=0.0", "data.block_size=16", "sample.max_new_tokens=4"]),
}
DETERMINISTIC, NOISY = ("flow", "lm"), ("vae", "gan", "ebm")


@pytest.fixture(autouse=True)
def one_thread():
    """The torchrun processes run one torch thread each; the reference in this process must too, or
    kernels that split their sums over threads round differently (and Adam magnifies it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def overrides(name: str) -> list[str]:
    return COMMON + RUNS[name][1]


@pytest.fixture(scope="module")
def torchrun_runs(tmp_path_factory) -> Path:
    """The five configs trained by two processes under torchrun with Gloo."""
    out = tmp_path_factory.mktemp("torchrun")
    runs = {name: [str(CONFIGS / config), overrides(name), None] for name, (config, _) in RUNS.items()}
    one = trainer("vae", out / "vae_one_process", World())  # K steps in this process, continued by two
    one.fit()
    runs["vae_resumed"] = [str(CONFIGS / RUNS["vae"][0]), overrides("vae") + [f"train.max_steps={K + 2}"],
                           str(out / "vae_one_process" / "last.pt")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = Path(__file__).with_name("distributed_worker.py")
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
         str(worker), str(out), json.dumps(runs)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def trainer(name: str, run_dir: Path, world: World, extra: tuple[str, ...] = ()) -> Trainer:
    cfg = load_config(CONFIGS / RUNS[name][0], overrides(name) + list(extra))
    data = load_data(cfg.data)
    return Trainer(build_model(cfg, data.spec, seed=cfg.train.seed), data, cfg, run_dir, world=world)


class Lockstep:
    """Runs the ranks of a data-parallel run as threads of one process, strictly one at a time.

    A rank runs until it reaches a collective (``all_reduce_``); there it leaves its tensor, saves its
    torch random state and hands over to the next rank; the last rank to arrive reduces the tensors
    and hands back to rank 0. So each rank sees its own random stream, as separate processes do.
    """

    def __init__(self, size: int):
        self.size, self.turn = size, 0
        self.cond = threading.Condition()
        self.rng: list[torch.Tensor] = [torch.get_rng_state()] * size
        self.inbox: list[torch.Tensor] = [torch.empty(0)] * size
        self.reduced = torch.empty(0)
        self.rank_of: dict[int, int] = {}

    def all_reduce_(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        rank = self.rank_of[threading.get_ident()]
        with self.cond:
            self.rng[rank], self.inbox[rank] = torch.get_rng_state(), tensor.clone()
            if rank == self.size - 1:  # the sum a + b of Gloo's all-reduce, in rank order
                stacked = torch.stack(self.inbox)
                self.reduced = stacked.sum(0) if op == "sum" else stacked.max(0).values
            self._hand_over(rank)
            self.cond.wait_for(lambda: self.turn == rank)
        torch.set_rng_state(self.rng[rank])
        return tensor.copy_(self.reduced)

    def _hand_over(self, rank: int) -> None:
        self.turn = (rank + 1) % self.size
        self.cond.notify_all()

    def run(self, jobs: list) -> None:
        errors: list[BaseException] = []

        def rank_main(rank: int) -> None:
            self.rank_of[threading.get_ident()] = rank
            with self.cond:
                self.cond.wait_for(lambda: self.turn == rank)
            torch.set_rng_state(self.rng[rank])
            try:
                jobs[rank]()
            except BaseException as err:  # noqa: BLE001 - re-raised in the test's thread
                errors.append(err)
            with self.cond:
                self._hand_over(rank)

        threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        if errors:
            raise errors[0]


def lockstep_weights(name: str, tmp_path: Path, monkeypatch) -> dict[str, torch.Tensor]:
    """Rank 0's weights after K steps of two ranks run by ``Lockstep`` in this process."""
    lockstep = Lockstep(2)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "all_reduce_", lockstep.all_reduce_)
    monkeypatch.setattr(distributed, "broadcast_state", lambda module: None)  # both ranks build from one seed
    trainers = []
    for rank in range(2):  # rank 1's trainer reseeds torch's generator: keep each rank's stream
        trainers.append(trainer(name, tmp_path / f"rank{rank}", World(rank, 2)))
        lockstep.rng[rank] = torch.get_rng_state()
    lockstep.run([t.fit for t in trainers])
    assert_same(trainers[0].model.state_dict(), trainers[1].model.state_dict(), parameters_only=trainers[0].model)
    return trainers[0].model.state_dict()


def assert_same(a: dict, b: dict, atol: float = 0.0, parameters_only: torch.nn.Module | None = None) -> float:
    """Every tensor of ``a`` equals ``b``'s (within ``atol``); the largest difference."""
    names = [n for n, _ in parameters_only.named_parameters()] if parameters_only is not None else list(a)
    if not names:
        return 0.0
    assert set(names) <= set(b)
    worst = max(float((a[n].double() - b[n].double()).abs().max()) if a[n].numel() else 0.0 for n in names)
    assert worst <= atol, f"largest difference {worst:.3g} > {atol}"
    return worst


@pytest.mark.parametrize("name", NOISY)
def test_two_processes_equal_one_process_running_both_ranks(name, torchrun_runs, tmp_path, monkeypatch):
    run = torchrun_runs / name
    state = load_checkpoint(run / "last.pt")
    assert state["step"] == K
    reference = lockstep_weights(name, tmp_path, monkeypatch)
    worst = assert_same(state["model"], reference, atol=1e-6)  # parameters and buffers, EBM replay buffer included
    print(f"{name}: torchrun vs lockstep, largest difference {worst:.3g}")


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_two_processes_equal_one_process_with_the_global_batch(name, torchrun_runs, tmp_path):
    run = torchrun_runs / name
    state = load_checkpoint(run / "last.pt")
    one = trainer(name, tmp_path, World())
    one.fit()
    assert one.step == state["step"] == K
    # The first step's loss and gradient norm, before any update: the mean over the two slices is the
    # full-batch loss, and the mean of the two gradients the full-batch gradient (a sum instead of a
    # mean would double the norm, a wrong slice change both; Adam would hide either in the weights).
    records = [train_records(folder)[0] for folder in (run, tmp_path)]
    for key in ("loss", "grad_norm"):
        assert records[0][key] == pytest.approx(records[1][key], rel=1e-5)
    # The weights then differ by float rounding, which Adam magnifies where a gradient is itself rounding
    # noise: the flow's ActNorm biases and zero-initialised coupling outputs start with gradients near
    # zero, whose Adam steps are up to +-lr either way. The flow's weights agree within one step at the
    # peak learning rate (3e-3; measured 4e-4 here), the LM's within 1e-5 (measured 4e-8).
    atol = one.tcfg.lr if name == "flow" else 1e-5
    worst = assert_same(state["model"], one.model.state_dict(), atol=atol)
    print(f"{name}: torchrun vs one process, largest difference {worst:.3g}")


def train_records(run: Path) -> list[dict]:
    return [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if m["split"] == "train"]


@pytest.mark.parametrize("name", list(RUNS))
def test_both_ranks_hold_the_same_parameters_and_rank_0_alone_writes(name, torchrun_runs):
    run = torchrun_runs / name
    ranks = [torch.load(run / f"rank{r}.pt", weights_only=True) for r in range(2)]
    model = build_model(load_config(CONFIGS / RUNS[name][0], overrides(name)), load_data(
        load_config(CONFIGS / RUNS[name][0], overrides(name)).data).spec)
    assert_same(ranks[0], ranks[1], parameters_only=model)
    assert [m["step"] for m in train_records(run)] == list(range(1, K + 1))  # one writer


def test_checkpoints_resume_across_process_counts(torchrun_runs, tmp_path):
    """One process's checkpoint continued by two, and two processes' by one, both land where one
    process's K + 2 straight steps do in everything that does not depend on the noise: the step, the
    data stream's position and the schedules."""
    longer = (f"train.max_steps={K + 2}",)
    straight = trainer("vae", tmp_path / "straight", World(), longer)
    straight.fit()
    two_from_one = load_checkpoint(torchrun_runs / "vae_resumed" / "last.pt")
    one_from_two = trainer("vae", tmp_path / "one_from_two", World(), longer)
    one_from_two.resume(torchrun_runs / "vae" / "last.pt")
    one_from_two.fit()
    for state in (two_from_one, one_from_two.state_dict()):
        assert state["step"] == K + 2
        assert all(torch.equal(state["stream"][k], v) if isinstance(v, torch.Tensor) else state["stream"][k] == v
                   for k, v in straight.stream.state_dict().items())
        assert state["schedulers"] == straight.state_dict()["schedulers"]
        assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
