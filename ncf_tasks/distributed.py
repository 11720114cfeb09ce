"""Data-parallel training of one model over several processes (``train_procs``, ``NCF_TRAIN_PROCS``).

``torch.distributed``'s own engine: the training task launches ``torchrun`` (``torch.distributed.run
--standalone``) with ``train_procs`` ranks on its worker — one per GPU with NCCL, or CPU processes with
gloo — and each rank runs ``train.run_train`` wrapped in ``DistributedDataParallel``. ``train_procs=1``
(the default) is the single-process path, unchanged.

How an epoch is split (``fitting.train_epoch``): every rank draws the same permutation of the positives
and the same negatives (the one-process stream, same seed), and computes its contiguous ``1/world`` of
each batch, with the loss scaled so that DDP's average of the ranks' gradients is the whole batch's
gradient. The optimiser sees the same batches, steps and gradients as one process: ``train_procs=N``
trains the model ``train_procs=1`` trains, up to the order of float sums (tested), not merely a model of
the same quality. The price is that every rank draws the whole epoch's negatives (cheap next to the
model's forward and backward, on a GPU most of all). Every rank scores the validation candidates
(cheap, identical weights), so all of them take the same early-stopping decision; only rank 0 writes the
checkpoint, the model and the history, and its result comes back to the launching task (a file in a
temporary folder).

A failed rank fails the launch: ``DistributedTrainingFailed`` with the exit code; the ranks' logs are in
the task log above it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ncf_tasks.config import Settings
from ncf_tasks.errors import NcfError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
RESULT_ENV = "NCF_DDP_RESULT"  # where rank 0 writes the result the launcher returns (not a setting)


class DistributedTrainingFailed(NcfError):
    """A rank of a distributed training exited with an error (its traceback is in the task log)."""


@dataclass(frozen=True)
class Rank:
    rank: int
    world: int
    local_rank: int

    @property
    def leader(self) -> bool:
        return self.rank == 0


def in_worker() -> bool:
    """True inside a rank that torchrun started (it sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(settings: Settings) -> Rank:
    """Join the process group: NCCL on CUDA (this rank's GPU made current), gloo on CPU."""
    import torch
    import torch.distributed as dist

    me = Rank(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    cuda = settings.torch_device == "cuda"
    if cuda:
        torch.cuda.set_device(me.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    log.info("rank %d of %d (local %d), backend %s", me.rank, me.world, me.local_rank, dist.get_backend())
    return me


def wrap(net: "torch.nn.Module", me: Rank, device: "torch.device") -> "torch.nn.Module":
    """The module the training steps go through: gradients all-reduced across ranks after backward."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(net, device_ids=[me.local_rank] if device.type == "cuda" else None)


def all_sum(value: "torch.Tensor") -> "torch.Tensor":
    import torch.distributed as dist

    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def finish(result: dict, me: Rank) -> None:
    """Rank 0 hands its result to the launcher; every rank leaves the group."""
    import torch.distributed as dist

    if me.leader and os.environ.get(RESULT_ENV):
        Path(os.environ[RESULT_ENV]).write_text(json.dumps(result))
    dist.destroy_process_group()


def launch(settings: Settings, *, run_id: str, model: str) -> dict:
    """Run ``train.run_train`` on ``settings.train_procs`` ranks with torchrun; returns rank 0's result.

    The ranks get this task's settings whole (a JSON file: trigger params and the connection's
    credentials included, so nothing is re-derived differently). On CPU, each rank gets
    ``cores // train_procs`` threads unless ``threads`` is set."""
    n = settings.train_procs
    threads = settings.threads or max(1, (os.cpu_count() or 1) // n)  # each rank's share of the cores
    if settings.torch_device == "cpu":
        settings = settings.replace(threads=threads)
    with tempfile.TemporaryDirectory(prefix="ncf-ddp-") as tmp:
        cfg, out = Path(tmp) / "settings.json", Path(tmp) / "result.json"
        cfg.write_text(json.dumps(settings.to_dict(redact=False)))
        os.chmod(cfg, 0o600)  # it holds the storage credentials
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
               "-m", "ncf_tasks.distributed", str(cfg), run_id, model]
        log.info("%s: data-parallel training on %d %s process(es): %s", model, n, settings.torch_device,
                 " ".join(cmd[1:]))
        # the ranks import the ncf_tasks this task imported, however it was found (sys.path, not the environment,
        # in a benchmark or a notebook; the DAG folder's parent under Airflow)
        code_root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join([code_root, *filter(None, [os.environ.get("PYTHONPATH")])])
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("NCF_")}, RESULT_ENV: str(out),
               "OMP_NUM_THREADS": str(threads), "PYTHONPATH": path}  # torchrun would set 1 thread, with a banner
        code = subprocess.run(cmd, env=env).returncode
        if code != 0 or not out.exists():
            raise DistributedTrainingFailed(f"distributed training of {model} for run {run_id} on {n} processes "
                                            f"failed (torchrun exit code {code}); the ranks' errors are above")
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    """A rank's entry point (``python -m ncf_tasks.distributed SETTINGS.json RUN_ID MODEL``, under torchrun)."""
    from ncf_tasks.train import run_train

    cfg, run_id, model = argv or sys.argv[1:]
    logging.basicConfig(level=logging.INFO, format=f"[rank {os.environ.get('RANK', '?')}] %(asctime)s %(name)s "
                                                   "%(levelname)s %(message)s")
    run_train(Settings.from_env(env={}, **json.loads(Path(cfg).read_text())), run_id=run_id, model=model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
