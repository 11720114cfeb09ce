"""The epoch loop (``fitting``): NeuMF fine-tuning's shorter epochs (``neumf_epoch_fraction``)."""

import math

import polars as pl
import torch

from ncf_tasks.config import Settings
from ncf_tasks.fitting import epoch_generator, epoch_limits, fit, initial_state, make_optimizer, new_model, train_epoch
from ncf_tasks.rundata import from_frames
from ncf_tasks.sampling import PositiveSet


def random_set(users: int = 40, items: int = 30, rows: int = 400):
    g = torch.Generator().manual_seed(0)
    train = pl.DataFrame(
        {
            "user_idx": torch.randint(0, users, (rows,), generator=g).tolist(),
            "item_idx": torch.randint(0, items, (rows,), generator=g).tolist(),
        },
        schema={"user_idx": pl.Int32, "item_idx": pl.Int32},
    )
    held = pl.DataFrame(
        {"user_idx": list(range(users)), "item_idx": [0] * users, "negatives": [[1, 2]] * users},
        schema={"user_idx": pl.Int32, "item_idx": pl.Int32, "negatives": pl.Array(pl.Int32, 2)},
    )
    data = from_frames(None, users, items, train, held, held)
    return data, PositiveSet(*data.all_positives(), users, items)


def steps(opt: torch.optim.Optimizer) -> int:
    return int(next(iter(opt.state.values()))["step"])


def test_fine_tuning_epochs_pass_over_their_share_at_a_whole_pass_batch_and_limits_count_whole_passes():
    data, pos = random_set()
    s = Settings(factors=4, mlp_layers=(8, 4), train_negatives=2, batch_size=30, epochs=1, recency_boost=0.0,
                 neumf_epoch_fraction=0.25)  # fmt: skip
    cpu = torch.device("cpu")
    gen = epoch_generator(s, 1, cpu)
    net = new_model("gmf", data.n_users, data.n_items, s)
    _, samples = train_epoch(net, make_optimizer("gmf", net, s), data, pos, s, gen, cpu, fraction=0.25)
    assert samples == math.ceil(400 * 0.25) * 3

    torch.manual_seed(0)
    parts = tuple(new_model(m, data.n_users, data.n_items, s) for m in ("gmf", "mlp"))
    done = {}
    for kind, net in (("gmf", parts[0]), ("neumf", new_model("neumf", data.n_users, data.n_items, s, parts))):
        opt = make_optimizer(kind, net, s)
        state = fit(kind, net, opt, data, pos, s, cpu, initial_state(net, data, s.eval_k, kind))
        done[kind] = (steps(opt), [h.get("passes") for h in state["history"]])
    # 10 positives (30 samples) per step: GMF's one epoch is a whole pass of 40 steps; fine-tuning's epochs=1
    # is four quarter passes of 10 steps, each validated
    assert done == {"gmf": (40, [None]), "neumf": (40, [0.25, 0.5, 0.75, 1.0])}
    assert epoch_limits("neumf", s.replace(epochs=30, patience=6)) == (120, 24)
    assert epoch_limits("mlp", s.replace(epochs=30, patience=6)) == (30, 6)
    assert epoch_limits("neumf", s.replace(epochs=30, patience=6, pretrain=False)) == (30, 6)


def test_fine_tuning_drops_out_at_neumf_dropout_and_its_masks_follow_the_epoch():
    """The fused NeuMF trains with ``neumf_dropout``, its MLP part pretrained with ``dropout``; the masks come from
    a stream seeded per epoch, so an epoch run again (a resumed task's) trains to the same weights."""
    data, pos = random_set()
    s = Settings(factors=4, mlp_layers=(8, 4), batch_size=64, epochs=1, dropout=0.0, neumf_dropout=0.5, l2=0.0)
    gmf, mlp = (new_model(kind, 40, 30, s) for kind in ("gmf", "mlp"))
    assert mlp.dropout == 0.0
    weights = []
    for _ in range(2):
        net = new_model("neumf", 40, 30, s, (gmf, mlp))
        assert net.mlp.dropout == 0.5
        state = initial_state(net, data, 2, "neumf")
        fit("neumf", net, make_optimizer("neumf", net, s), data, pos, s, torch.device("cpu"), state)
        weights.append(net.state_dict())
        torch.manual_seed(123)  # whatever the global stream was before: the epoch's seed decides the masks
    assert all(torch.equal(weights[0][n], weights[1][n]) for n in weights[0])
