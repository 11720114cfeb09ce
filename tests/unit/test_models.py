import pytest
import torch

from ncf_tasks.metrics import held_out_rank, hit_ndcg
from ncf_tasks.models import GMF, MLP, NeuMF, dropout


def test_shapes_and_embedding_init():
    for m in (GMF(7, 9, 4), MLP(7, 9, (16, 8, 4)), NeuMF(7, 9, 4, (16, 8, 4))):
        u, i = torch.tensor([0, 6, 3]), torch.tensor([8, 0, 2])
        assert m(u, i).shape == (3,)
    emb = GMF(1000, 1000, 32).user.weight
    assert abs(float(emb.detach().std()) - 0.01) < 0.001


def test_neumf_fusion_reproduces_alpha_weighted_scores_exactly():
    torch.manual_seed(0)
    gmf, mlp = GMF(20, 30, 8), MLP(20, 30, (16, 8, 4))
    for p in list(gmf.parameters()) + list(mlp.parameters()):
        torch.nn.init.normal_(p, std=0.5)  # 'trained' weights, far from init
    u, i = torch.randint(20, (100,)), torch.randint(30, (100,))
    for alpha in (0.5, 0.2, 1.0):
        fused = NeuMF.from_pretrained(gmf, mlp, alpha)
        expected = alpha * gmf(u, i) + (1 - alpha) * mlp(u, i)
        assert torch.allclose(fused(u, i), expected, atol=1e-5)


def test_score_all_matches_pairwise_forward():
    torch.manual_seed(1)
    for m in (GMF(10, 40, 6), MLP(10, 40, (12, 6, 3)), NeuMF(10, 40, 6, (12, 6, 3))):
        for p in m.parameters():
            torch.nn.init.normal_(p, std=0.3)
        users, items = torch.tensor([0, 3, 9]), torch.arange(40)
        full = m.score_all(users, items)
        pair = m(users.repeat_interleave(40), items.repeat(3)).view(3, 40)
        assert torch.allclose(full, pair, atol=1e-5)


@pytest.mark.parametrize("n_items", [40, 20])  # 35 samples: the first layer per sample / once per catalogue item
def test_users_broadcast_against_items_match_the_flat_forward_and_its_gradients(n_items):
    """Training batches score (m, 1) users against (m, 1 + K) items: same logits and same gradients."""
    torch.manual_seed(2)
    for m in (
        GMF(10, n_items, 6),
        MLP(10, n_items, (12, 6, 3)),
        MLP(10, n_items, (12,)),
        NeuMF(10, n_items, 6, (12, 6, 3)),
    ):
        u, items = torch.randint(10, (7,)), torch.randint(n_items, (7, 5))
        grouped = m(u[:, None], items)
        grouped.square().sum().backward()
        g1 = [p.grad.clone() for p in m.parameters()]
        m.zero_grad()
        flat = m(u.repeat_interleave(5), items.reshape(-1))
        flat.square().sum().backward()
        assert grouped.shape == (7, 5) and torch.allclose(grouped.reshape(-1), flat, atol=1e-6)
        assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(g1, m.parameters()))


def test_auto_batch_size_keeps_about_256_steps_per_epoch():
    from ncf_tasks.config import Settings
    from ncf_tasks.fitting import batch_size_for

    auto = Settings.from_env(env={})
    assert auto.batch_size == 0
    assert batch_size_for(auto, 99_000) == 2048  # ML-100K: ~495k samples
    assert batch_size_for(auto, 1_000_000) == 16384  # ML-1M: ~5M samples
    assert batch_size_for(auto, 1_000) == 1024 and batch_size_for(auto, 10**9) == 16384  # clamped
    assert batch_size_for(auto.replace(batch_size=300), 1_000_000) == 300


def test_metrics_hand_computed():
    # rows: hit at rank 0, hit at rank 9, miss (rank 10), tie counted against the held-out item
    s = torch.tensor(
        [[9.0] + [1.0] * 20, [5.0] + [6.0] * 9 + [1.0] * 11, [5.0] + [6.0] * 10 + [1.0] * 10, [5.0, 5.0] + [1.0] * 19]
    )
    ranks = held_out_rank(s)
    assert ranks.tolist() == [0, 9, 10, 1]
    hr, ndcg = hit_ndcg(ranks, 10)
    assert hr == 3 / 4
    expected = (1.0 + 1 / torch.log2(torch.tensor(11.0)).item() + 0 + 1 / torch.log2(torch.tensor(3.0)).item()) / 4
    assert abs(ndcg - expected) < 1e-9
    assert hit_ndcg(held_out_rank(torch.zeros(5, 100)), 10) == (0.0, 0.0)  # a constant model never hits


@pytest.mark.parametrize("n_items", [60, 12])  # 12 samples: the MLP's item rows gathered per sample / per item
def test_lazy_l2_reaches_only_the_rows_a_batch_reads(n_items):
    """The embedding penalty's gradient is zero on every row the batch did not read, so an optimiser step on
    it leaves those rows exactly as they were (dense weight decay would shrink all of them every step)."""
    from ncf_tasks.models import embedding_penalty, embedding_tables

    torch.manual_seed(0)
    m = NeuMF(50, n_items, 8, (16, 8))
    users, items = torch.tensor([[3], [7]]), torch.tensor([[1, 2, 5, 5, 9, 11], [5, 9, 11, 1, 1, 2]])
    before = {id(t): t.weight.detach().clone() for ts in embedding_tables(m) for t in ts}
    penalty = embedding_penalty(m, users, items)
    expected = sum(float(t.weight.detach()[[3, 7]].square().sum()) for t in embedding_tables(m)[0]) + sum(
        float(t.weight.detach()[items.flatten()].square().sum()) for t in embedding_tables(m)[1]
    )
    assert abs(float(penalty.detach()) - expected) < 1e-5
    torch.optim.SGD(m.parameters(), lr=0.1).zero_grad()
    penalty.backward()
    torch.optim.SGD(m.parameters(), lr=0.1).step()
    for tables, touched in ((embedding_tables(m)[0], {3, 7}), (embedding_tables(m)[1], {1, 2, 5, 9, 11})):
        for t in tables:
            changed = set((t.weight.detach() != before[id(t)]).any(dim=1).nonzero().flatten().tolist())
            assert changed == touched
            assert (t.weight.detach()[sorted(touched)].norm(dim=1) < before[id(t)][sorted(touched)].norm(dim=1)).all()


def test_dropout_acts_in_training_only():
    torch.manual_seed(0)
    m = MLP(10, 12, (16, 8, 4), dropout=0.5)
    u, i = torch.arange(10), torch.arange(10)
    m.eval()
    assert torch.equal(m(u, i), m(u, i))  # scoring is deterministic
    m.train()
    assert not torch.equal(m(u, i), m(u, i))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_byte_mask_dropout_drops_at_the_rate_keeps_the_mean_and_follows_the_global_seed(p):
    """Masks from random bytes: the rate is p to the nearest 1/256, an odd-sized tensor gets a mask for every
    unit, the kept units are scaled so the mean stays, gradients flow through the kept ones only, and the
    global seed decides the masks (fine-tuning seeds it per epoch)."""
    x = torch.ones(4001, 37, requires_grad=True)
    torch.manual_seed(1)
    y = dropout(x, p)
    cut = round(p * 256)
    dropped = (y == 0).double().mean().item()
    assert abs(dropped - cut / 256) < 0.005
    assert abs(y.mean().item() - 1.0) < 0.02
    assert torch.allclose(y[y != 0], torch.tensor(256 / (256 - cut)))
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)
    torch.manual_seed(1)
    assert torch.equal(dropout(x, p), y)
    assert dropout(x, 0.001) is x  # below half of 1/256: no unit would drop


def test_an_empty_share_of_a_batch_gives_zero_gradients_for_every_parameter():
    """Data-parallel training splits each batch between ranks; a last batch smaller than the world leaves
    a rank nothing. Its forward and backward must still run and give every parameter a gradient (DDP
    all-reduces them all), zero."""
    users, items = torch.zeros((0, 1), dtype=torch.int64), torch.zeros((0, 5), dtype=torch.int64)
    for m in (GMF(10, 40, 6), MLP(10, 40, (12, 6, 3)), NeuMF(10, 40, 6, (12, 6, 3))):
        penalty = []
        logits = m(users, items, penalty)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.zeros(0, 5), reduction="sum")
        (loss + sum(penalty)).backward()
        assert logits.shape == (0, 5)
        assert all(p.grad is not None and not p.grad.any() for p in m.parameters()), type(m).__name__
