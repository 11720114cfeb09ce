"""RecBole's NeuMF on a split handed over by ``benchmarks/peers.py``; runs in RecBole's own venv.

    python -m venv .peers-recbole && .peers-recbole/bin/pip install recbole==1.2.1 "numpy<2" torch==2.5.1
    .peers-recbole/bin/python benchmarks/peer_recbole.py SPLIT.npz OUT.npz --batch 2048 [--factors 64 ...]

Imports only RecBole, torch and numpy (never ``ncf_tasks``): what a user who picked RecBole instead would run.
RecBole 1.2.1 needs numpy < 2 (its Ray pin) and torch < 2.6 (it loads its own checkpoints with pickle),
hence a venv of its own. The split is RecBole's "benchmark files" (``ncf.train.inter``, ``ncf.valid.inter``,
``ncf.test.inter``), so both trainers see the same pairs. RecBole's documented way to pretrain NeuMF: GMF is
NeuMF with ``mf_train`` only, MLP with ``mlp_train`` only, then NeuMF with ``use_pretrain`` from both
checkpoints (α 0.5 on the output layer). Each stage with RecBole's own early stopping on validation HR@10
over 100 sampled items per user (``uni100``; patience as ours), keeping the best epoch's checkpoint.
``train_batch_size`` counts samples (positives and their negatives), as ours does. Writes each model's scores
of the test candidates, the training seconds and the epochs run; ``peers.py`` computes HR/NDCG from them with
the pipeline's own metric code.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import peer_args


def write_atomic(folder: Path, z) -> None:
    """The split as RecBole atomic files: one per role, user and item as tokens (our indices as strings)."""
    folder.mkdir(parents=True)
    roles = {
        "train": (z["train_users"], z["train_items"]),
        "valid": (z["valid_users"], z["valid_items"]),
        "test": (z["test_users"], z["test_candidates"][:, 0]),
    }
    for role, (users, items) in roles.items():
        rows = "\n".join(f"{u}\t{i}" for u, i in zip(users.tolist(), items.tolist()))
        (folder / f"ncf.{role}.inter").write_text("user_id:token\titem_id:token\n" + rows + "\n")


def main() -> None:
    args = peer_args.parse("--batch", "samples per step, negatives included (as ours)", 1e-3)

    warnings.filterwarnings("ignore", category=FutureWarning)  # torch 2.5's notes on RecBole's own calls
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.interaction import Interaction
    from recbole.model.general_recommender import NeuMF
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    torch.set_num_threads(args.threads)
    z = np.load(args.split)
    tmp = Path(tempfile.mkdtemp(prefix="recbole-"))
    write_atomic(tmp / "ncf", z)
    base = {
        "data_path": str(tmp),
        "checkpoint_dir": str(tmp / "saved"),
        "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "load_col": {"inter": ["user_id", "item_id"]},
        "train_neg_sample_args": {
            "distribution": "uniform",
            "sample_num": args.negatives,
            "dynamic": False,
            "candidate_num": 0,
        },
        "eval_args": {"group_by": "user", "order": "RO", "mode": {"valid": "uni100", "test": "uni100"}},
        "metrics": ["Hit", "NDCG"],
        "topk": [10],
        "valid_metric": "hit@10",
        "epochs": args.epochs,
        "stopping_step": args.patience,
        "train_batch_size": args.batch,
        "eval_batch_size": 4096,
        "learner": "adam",
        "seed": args.seed,
        "reproducibility": True,
        "use_gpu": False,
        "show_progress": False,
        "state": "ERROR",
        "mf_embedding_size": args.factors,
        "mlp_embedding_size": args.layers[0] // 2,
        "mlp_hidden_size": list(args.layers[1:]) or [args.layers[0]],
        "dropout_prob": 0.0,
    }
    stages = {
        "gmf": {"mf_train": True, "mlp_train": False, "use_pretrain": False, "learning_rate": args.lr},
        "mlp": {"mf_train": False, "mlp_train": True, "use_pretrain": False, "learning_rate": args.lr},
        "neumf": {"mf_train": True, "mlp_train": True, "use_pretrain": True, "learning_rate": args.neumf_lr},
    }
    users, cands = z["test_users"], z["test_candidates"]
    out, saved = {}, {}
    for name, stage in stages.items():
        extra = {"mf_pretrain_path": saved.get("gmf"), "mlp_pretrain_path": saved.get("mlp")} if name == "neumf" else {}
        config = Config(model="NeuMF", dataset="ncf", config_dict={**base, **stage, **extra})
        logging.getLogger().setLevel(logging.ERROR)
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, valid_data, _ = data_preparation(config, dataset)
        init_seed(config["seed"], config["reproducibility"])
        model = NeuMF(config, train_data.dataset)
        trainer = Trainer(config, model)
        t = time.perf_counter()
        trainer.fit(train_data, valid_data, saved=True, show_progress=False)
        seconds = time.perf_counter() - t
        saved[name] = trainer.saved_model_file
        model.load_state_dict(
            torch.load(trainer.saved_model_file, map_location="cpu", weights_only=False)["state_dict"]
        )
        model.eval()
        epochs = len(trainer.train_loss_dict)  # epoch -> loss of every epoch run
        # RecBole's ids are tokens of ours (index strings): a lookup array from ours to RecBole's; an item it
        # never saw (id 0, its padding) scores -inf (a miss)
        tokens = dataset.field2id_token["item_id"]
        iid_of = np.zeros(int(z["n_items"]), dtype=np.int64)
        iid_of[tokens[1:].astype(np.int64)] = np.arange(1, len(tokens))
        iid, known = iid_of[cands], iid_of[cands] > 0
        uid = dataset.token2id("user_id", [str(u) for u in users.tolist()])
        with torch.no_grad():
            inter = Interaction(
                {
                    "user_id": torch.from_numpy(np.repeat(uid, cands.shape[1])),
                    "item_id": torch.from_numpy(iid.reshape(-1)),
                }
            )
            scores = model.predict(inter).double().numpy().reshape(cands.shape)
        scores[~known] = -np.inf
        out[f"{name}_scores"], out[f"{name}_seconds"], out[f"{name}_epochs"] = scores, seconds, epochs
        out[f"{name}_samples"] = epochs * len(z["train_users"]) * (1 + args.negatives)
        print(f"recbole {name}: {epochs} epochs, {seconds:.1f} s", flush=True)
    np.savez(args.out, **out)


if __name__ == "__main__":
    main()
