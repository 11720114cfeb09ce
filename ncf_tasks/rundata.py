"""A run's training set as device tensors, described by its manifest (sizes and file keys).

Training, evaluation and publication read the same Parquet files through this one loader. Candidate
matrices put the held-out item in column 0, followed by its sampled negatives.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch

from ncf_tasks.dataset import read_manifest
from ncf_tasks.storage import Storage


@dataclass
class RunData:
    manifest: dict
    n_users: int
    n_items: int
    train_users: torch.Tensor      # (N,) int64
    train_items: torch.Tensor      # (N,) int64
    valid_users: torch.Tensor      # (V,)
    valid_candidates: torch.Tensor  # (V, 1 + negatives), held-out item first
    test_users: torch.Tensor
    test_candidates: torch.Tensor

    def all_positives(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every (user, item) interaction of the run: train, validation and test positives."""
        u = torch.cat([self.train_users, self.valid_users, self.test_users])
        i = torch.cat([self.train_items, self.valid_candidates[:, 0], self.test_candidates[:, 0]])
        return u, i


def _tensor(series, device) -> torch.Tensor:
    return torch.from_numpy(series.to_numpy(writable=True)).to(device=device, dtype=torch.int64)


def from_frames(manifest: dict, n_users: int, n_items: int, train, valid, test,
                device: str | torch.device = "cpu") -> RunData:
    """Tensors from the set's frames (train: user_idx, item_idx; valid/test: + negatives)."""
    held = {}
    for role, df in (("valid", valid), ("test", test)):
        cands = torch.cat([_tensor(df["item_idx"], "cpu")[:, None],
                           torch.from_numpy(df["negatives"].to_numpy(writable=True)).to(torch.int64)], dim=1)
        held[role] = (_tensor(df["user_idx"], device), cands.to(device))
    return RunData(
        manifest=manifest, n_users=n_users, n_items=n_items,
        train_users=_tensor(train["user_idx"], device), train_items=_tensor(train["item_idx"], device),
        valid_users=held["valid"][0], valid_candidates=held["valid"][1],
        test_users=held["test"][0], test_candidates=held["test"][1],
    )


def load_run(storage: Storage, run_id: str, device: str | torch.device = "cpu") -> RunData:
    manifest = read_manifest(storage, run_id)
    frames = {role: storage.read_parquet(manifest["files"][role]) for role in ("train", "valid", "test")}
    return from_frames(manifest, manifest["n_users"], manifest["n_items"], device=device, **frames)


def save_torch(storage: Storage, key: str, obj: dict) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    storage.put_bytes(key, buf.getvalue())


def load_torch(storage: Storage, key: str) -> dict:
    return torch.load(io.BytesIO(storage.get_bytes(key)), map_location="cpu", weights_only=True)
