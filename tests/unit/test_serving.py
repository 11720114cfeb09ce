"""The exported model scores what the torch model scores, and top-K equals the torch scorer's."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ncf_tasks.errors import DataError
from ncf_tasks.models import GMF, MLP, NeuMF
from ncf_tasks.publish import Scorer
from ncf_tasks.scoring import top_k as torch_top_k
from ncf_tasks.serving import ServingModel, export

NETS = {
    "gmf": lambda: GMF(23, 17, 4),
    "mlp": lambda: MLP(23, 17, (8, 6, 4)),
    "mlp_no_tower": lambda: MLP(23, 17, (8,)),
    "neumf": lambda: NeuMF(23, 17, 4, (8, 6, 4)),
}


def served(net, kind):
    return ServingModel(export(net.state_dict(), {"model": kind.split("_")[0]}), "mem://model.npz")


def trained_like(make):
    """Weights far from the initialisation's near-zero scores, so that rankings are not ties."""
    torch.manual_seed(0)
    net = make().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.5)
    return net


@pytest.mark.parametrize("kind", sorted(NETS))
def test_scores_equal_the_torch_model_for_every_kind(kind):
    net = trained_like(NETS[kind])
    model = served(net, kind)
    ref = net.score_all(torch.arange(23), torch.arange(17)).detach().numpy()
    assert model.n_users == 23 and model.n_items == 17
    np.testing.assert_allclose(model.scores(0, 23), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.scores(5, 9), ref[5:9], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads,chunk_cells", [(1, 1), (2, 1), (2, 200), (1, 1 << 23)])
def test_top_k_equals_the_torch_scorer_for_a_user_range_any_chunking_and_threads(threads, chunk_cells):
    net = trained_like(NETS["neumf"])
    rng = np.random.default_rng(0)
    eu, ei = rng.integers(0, 23, 90), rng.integers(0, 17, 90)  # unsorted, users outside the range too
    idx, val = served(net, "neumf").top_k(4, 19, 5, (eu, ei), threads=threads, chunk_cells=chunk_cells)
    ref_i, ref_v = torch_top_k(net, torch.arange(4, 19), 17, 5, (torch.from_numpy(eu), torch.from_numpy(ei)))
    assert idx.shape == (15, 5) and idx.dtype == np.int32 and val.dtype == np.float32
    np.testing.assert_allclose(val, ref_v.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(idx, ref_i.numpy())
    excluded = set(zip(eu.tolist(), ei.tolist()))
    assert not any(
        (u, int(i)) in excluded for u, row in zip(range(4, 19), idx) for i, v in zip(row, val[u - 4]) if np.isfinite(v)
    )


def test_short_lists_end_in_minus_inf_and_tied_items_of_a_list_are_in_item_order():
    net = GMF(3, 6, 2).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()  # every item scores 0: a tie everywhere
    exclude = (np.array([0, 0, 0, 0, 0]), np.array([0, 1, 2, 3, 5]))  # user 0 may get item 4 only
    idx, val = served(net, "gmf").top_k(0, 3, 3, exclude)
    assert idx[0, 0] == 4 and np.isneginf(val[0, 1:]).all()
    assert idx[1].tolist() == sorted(idx[1].tolist()) and len(set(idx[1].tolist())) == 3
    idx, _ = served(net, "gmf").top_k(0, 3, 50, exclude)  # k beyond the catalogue: every item
    assert idx.shape == (3, 6) and idx[1].tolist() == [0, 1, 2, 3, 4, 5]


def test_a_file_that_is_not_an_export_is_refused_naming_it():
    with pytest.raises(DataError, match=r"mem://x.npz: not a serving model file"):
        ServingModel(b"PK\x03\x04 not a zip" * 3, "mem://x.npz")
    net = NETS["neumf"]()
    state = {k: v for k, v in net.state_dict().items() if k != "out.bias"}
    with pytest.raises(DataError, match=r"mem://y.npz: a neumf model lacks the array 'out.bias'"):
        ServingModel(export(state, {"model": "neumf"}), "mem://y.npz")
    with pytest.raises(DataError, match=r"model 'x+' is not one of gmf, mlp, neumf"):
        ServingModel(export(net.state_dict(), {"model": "x" * 500}), "mem://z.npz")


@pytest.mark.parametrize("threads", [1, 2])
def test_a_range_from_a_chunk_start_scores_bit_identically_to_the_whole_catalogue_run(threads):
    """What makes a sharded table equal one task's: chunks at multiples of ``chunk_users`` from user 0."""
    net = trained_like(NETS["neumf"])
    model, exclude = served(net, "neumf"), (np.array([3, 9, 9]), np.array([1, 2, 16]))
    cells = 17 * 12 * 4  # 4 users per chunk at width 12 (6 x 2)
    assert model.chunk_users(cells) == 4
    whole_i, whole_v = model.top_k(0, 23, 6, exclude, threads=threads, chunk_cells=cells)
    for lo, hi in ((0, 8), (8, 20), (20, 23)):
        i, v = model.top_k(lo, hi, 6, exclude, threads=1, chunk_cells=cells)
        assert np.array_equal(i, whole_i[lo:hi]) and np.array_equal(v, whole_v[lo:hi])


def test_the_gpu_workers_torch_path_ranks_as_the_numpy_path():
    """``publish.Scorer`` with a device builds the torch model from the same export (run here on the CPU)."""
    net = trained_like(NETS["neumf"])
    model = ServingModel(export(net.state_dict(), {"model": "neumf", "factors": 4, "mlp_layers": [8, 6, 4]}), "m")
    exclude = (np.array([0, 0, 5]), np.array([1, 2, 3]))
    u, i, s = Scorer(model, exclude, device="cpu").top_k(5, 2, 20)
    u2, i2, s2 = Scorer(model, exclude, threads=2).top_k(5, 2, 20)
    assert np.array_equal(u, u2) and np.array_equal(i, i2)
    np.testing.assert_allclose(s, s2, rtol=1e-5, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_blocked_items_never_appear_and_the_slots_they_held_are_counted(data):
    """Random catalogues (which items are blocked), seen pairs, K and chunking; numpy and torch paths alike."""
    net = trained_like(NETS["neumf"])
    model = ServingModel(export(net.state_dict(), {"model": "neumf", "factors": 4, "mlp_layers": [8, 6, 4]}), "m")
    blocked = np.array(sorted(data.draw(st.sets(st.integers(0, 16), max_size=17))), np.int64)
    k = data.draw(st.integers(1, 17))
    n_seen = data.draw(st.integers(0, 60))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    exclude = (rng.integers(0, 23, n_seen), rng.integers(0, 17, n_seen))
    cells = data.draw(st.sampled_from([1, 200, 1 << 23]))
    removed = np.zeros(23, np.int64)
    idx, val = model.top_k(0, 23, k, exclude, threads=2, chunk_cells=cells, blocked=blocked, removed=removed)
    shown = np.isfinite(val)
    assert not np.isin(idx[shown], blocked).any()
    ref = model.scores(0, 23)
    ref[exclude] = -np.inf
    allowed = np.setdiff1d(np.arange(17), blocked)
    for u in range(23):  # the reference, user by user: the list is the top of the allowed unseen items
        ok = allowed[np.isfinite(ref[u, allowed])]
        want = ok[np.argsort(-ref[u, ok], kind="stable")][:k]
        assert sorted(idx[u][shown[u]].tolist()) == sorted(want.tolist())
        before = np.argsort(-ref[u], kind="stable")[:k]
        before = before[np.isfinite(ref[u, before])]
        assert removed[u] == np.isin(before, blocked).sum()
    on_torch = Scorer(model, exclude, device="cpu", available=_Blocked(blocked))  # the GPU worker's path
    on_numpy = Scorer(model, exclude, available=_Blocked(blocked))
    u, i, _ = on_torch.top_k(k, 2, 20)
    u2, i2, _ = on_numpy.top_k(k, 2, 20)
    assert sorted(zip(u.tolist(), i.tolist())) == sorted(zip(u2.tolist(), i2.tolist()))
    assert on_torch.last_removed == on_numpy.last_removed == removed[2:20].sum()


class _Blocked:
    """What ``Scorer`` reads of ``catalog.Availability``."""

    def __init__(self, blocked):
        self.blocked = blocked
