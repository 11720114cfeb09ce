"""A run's training set in memory: the typed ``Manifest`` build wrote, and ``RunData``, the set as device
tensors (what ``fitting``, ``train``, ``tune`` and ``evaluate`` compute on). Nothing here reads or writes
storage: ``artifacts.RunArtifacts`` does, and hands these out; benchmarks and tests build ``RunData``
from frames directly (``from_frames``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError

if TYPE_CHECKING:  # torch and polars load inside the functions
    import torch


def setup_torch(settings: Settings) -> "torch.device":
    """Resolve the device (NCF_DEVICE / CUDA when available) and pin the CPU thread count."""
    import torch

    device = torch.device(settings.torch_device)
    torch.set_num_threads(settings.cpu_threads)
    return device


@dataclass(frozen=True)
class Manifest:
    """What build wrote, read back typed: sizes, the set's files (keys) and its content digest."""

    run_id: str
    digest: str  # sha256 over the set's files (key, ETag, size): binds models to the set
    n_users: int
    n_items: int
    n_train: int
    n_valid: int
    n_test: int
    window_days: int
    eval_negatives: int
    train_negatives: int
    seed: int
    end_date: str
    files: dict[str, str]  # role -> key relative to the storage prefix
    partitions: list[dict] = field(default_factory=list)
    skipped_unvalidated: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    built_at: str = ""
    build_seconds: float | None = None
    # the tuned profile this run uses (profile.py): {"version", "uri", "applied": settings it set}; None = none
    profile: dict | None = None
    # warm start (warm.py): {"from_run", "since"} when this run's models start from production's; None = cold
    warm: dict | None = None

    def apply_profile(self, settings: Settings) -> Settings:
        """``settings`` with the profile values build recorded: every stage of a run uses the same ones, even
        if ``ncf_tune`` writes a new profile meanwhile (explicit params were left out of ``applied``)."""
        return settings.replace(**self.profile["applied"]) if self.profile else settings

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str) -> "Manifest":
        names = {f.name for f in dataclasses.fields(cls)}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - {"digest", "end_date"} - d.keys())
        if missing:
            raise DataError(f"{source}: manifest lacks {missing}; rebuild the run")
        return cls(**{"digest": "", "end_date": "", **{k: v for k, v in d.items() if k in names}})


@dataclass
class RunData:
    """A run's training set as device tensors. Candidate matrices hold the held-out item in column 0."""

    manifest: Manifest | None
    n_users: int
    n_items: int
    train_users: torch.Tensor  # (N,) int64
    train_items: torch.Tensor  # (N,) int64
    valid_users: torch.Tensor  # (V,)
    valid_candidates: torch.Tensor  # (V, 1 + negatives), held-out item first
    test_users: torch.Tensor
    test_candidates: torch.Tensor
    train_recency: torch.Tensor | None = None  # (N,) each train positive's rank from its user's latest, 0 = latest

    def all_positives(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every (user, item) interaction of the run: train, validation and test positives."""
        import torch

        u = torch.cat([self.train_users, self.valid_users, self.test_users])
        i = torch.cat([self.train_items, self.valid_candidates[:, 0], self.test_candidates[:, 0]])
        return u, i

    def with_validation(self) -> "RunData":
        """The same set with the validation positives added to train: what a refit trains on (``fitting.refit``)."""
        import torch

        users, items = self.seen_before_test()
        recency = None
        if self.train_recency is not None:  # the validation item is each user's latest before the test item
            recency = torch.cat([self.train_recency + 1, torch.zeros_like(self.valid_users)])
        return dataclasses.replace(self, train_users=users, train_items=items, train_recency=recency)

    def with_everything(self) -> "RunData":
        """Train, validation and test positives as train: the whole window, what tomorrow's fallback list counts
        (``evaluate``). Recency: the test item is each user's latest, the validation item the one before."""
        import torch

        users, items = self.all_positives()
        recency = None
        if self.train_recency is not None:
            recency = torch.cat(
                [self.train_recency + 2, torch.ones_like(self.valid_users), torch.zeros_like(self.test_users)]
            )
        return dataclasses.replace(self, train_users=users, train_items=items, train_recency=recency)

    def seen_before_test(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Train and validation positives: what full-catalogue evaluation excludes from the ranking."""
        import torch

        return (
            torch.cat([self.train_users, self.valid_users]),
            torch.cat([self.train_items, self.valid_candidates[:, 0]]),
        )


def _tensor(series, device) -> "torch.Tensor":
    import torch

    return torch.from_numpy(series.to_numpy(writable=True)).to(device=device, dtype=torch.int64)


def _recency(train, device) -> "torch.Tensor | None":
    """Each train positive's rank among its user's train positives, latest first (ties share the rank)."""
    import polars as pl

    if "event_ts" not in train.columns:
        return None
    rank = train.select((pl.col("event_ts").rank("min", descending=True).over("user_idx") - 1).alias("r"))
    return _tensor(rank["r"], device)


def from_frames(
    manifest: Manifest | None, n_users: int, n_items: int, train, valid, test, device: str | torch.device = "cpu"
) -> RunData:
    """Tensors from the set's frames (train: user_idx, item_idx; valid/test: + negatives)."""
    import torch

    held = {}
    for role, df in (("valid", valid), ("test", test)):
        cands = torch.cat(
            [
                _tensor(df["item_idx"], "cpu")[:, None],
                torch.from_numpy(df["negatives"].to_numpy(writable=True)).to(torch.int64),
            ],
            dim=1,
        )
        held[role] = (_tensor(df["user_idx"], device), cands.to(device))
    return RunData(
        manifest=manifest,
        n_users=n_users,
        n_items=n_items,
        train_users=_tensor(train["user_idx"], device),
        train_items=_tensor(train["item_idx"], device),
        valid_users=held["valid"][0],
        valid_candidates=held["valid"][1],
        test_users=held["test"][0],
        test_candidates=held["test"][1],
        train_recency=_recency(train, device),
    )
