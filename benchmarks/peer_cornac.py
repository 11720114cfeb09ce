"""cornac's NeuMF on a split handed over by ``benchmarks/peers.py``; runs in the peers' own venv.

    .peers/bin/python benchmarks/peer_cornac.py SPLIT.npz OUT.npz --batch-positives 409 [--factors 64 ...]

Imports only cornac, torch and numpy (never ``ncf_tasks``): what a user who picked cornac instead would run.
GMF and MLP are trained with cornac's PyTorch backend, then NeuMF from both (``from_pretrained``, α 0.5),
each with cornac's own early stopping (NDCG@100 on the validation pairs, patience as ours; cornac keeps the
last epoch's weights, not the best). Writes each model's scores of the test candidates, the training seconds
and the epochs run; ``peers.py`` computes HR/NDCG from them with the pipeline's own metric code.
"""

from __future__ import annotations

import time

import numpy as np
import peer_args


def main() -> None:
    args = peer_args.parse("--batch-positives", "cornac's batch counts positives", 3e-4)

    import torch
    from cornac.data import Dataset
    from cornac.models import GMF, MLP, NeuMF

    torch.set_num_threads(args.threads)
    z = np.load(args.split)
    ones = np.ones(len(z["train_users"]))
    train = Dataset.build(list(zip(z["train_users"].astype(str), z["train_items"].astype(str), ones)), seed=args.seed)
    val = Dataset.build(
        list(zip(z["valid_users"].astype(str), z["valid_items"].astype(str), np.ones(len(z["valid_users"])))),
        global_uid_map=train.uid_map,
        global_iid_map=train.iid_map,
        exclude_unknowns=True,
    )
    common = dict(
        num_epochs=args.epochs,
        batch_size=args.batch_positives,
        num_neg=args.negatives,
        backend="pytorch",
        early_stopping={"min_delta": 0.0, "patience": args.patience},
        verbose=False,
        seed=args.seed,
    )
    gmf = GMF(num_factors=args.factors, lr=args.lr, learner="adam", **common)
    mlp = MLP(layers=tuple(args.layers), lr=args.lr, learner="adam", **common)
    neumf = NeuMF(num_factors=args.factors, layers=tuple(args.layers), lr=args.neumf_lr, learner="adam", **common)
    neumf.from_pretrained(gmf, mlp, alpha=0.5)
    users, cands = z["test_users"], z["test_candidates"]
    out = {}
    for name, model in (("gmf", gmf), ("mlp", mlp), ("neumf", neumf)):
        t = time.perf_counter()
        model.fit(train, val)
        seconds = time.perf_counter() - t
        epochs = model.stopped_epoch or args.epochs
        # cornac's ids are strings of ours; an item it never saw in training scores -inf (a miss)
        iid = np.full(int(z["n_items"]), -1)
        for raw, inner in train.iid_map.items():
            iid[int(raw)] = inner
        scores = np.full(cands.shape, -np.inf, dtype=np.float64)
        for row, u in enumerate(users):
            inner_u = train.uid_map.get(str(u))
            if inner_u is None:
                continue
            s = model.score(inner_u)
            known = iid[cands[row]] >= 0
            scores[row, known] = s[iid[cands[row]][known]]
        out[f"{name}_scores"], out[f"{name}_seconds"], out[f"{name}_epochs"] = scores, seconds, epochs
        out[f"{name}_samples"] = epochs * len(ones) * (1 + args.negatives)
        print(f"cornac {name}: {epochs} epochs, {seconds:.1f} s", flush=True)
    np.savez(args.out, **out)


if __name__ == "__main__":
    main()
