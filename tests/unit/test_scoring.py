"""The one full-catalogue scorer: chunked, masked scores equal a brute-force reference."""

import pytest
import torch

from ncf_tasks.models import GMF, NeuMF
from ncf_tasks.scoring import masked_scores, top_k


def reference(net, users, n_items, exclude):
    scores = net.score_all(users, torch.arange(n_items)).float()
    row = {int(u): r for r, u in enumerate(users)}
    for u, i in zip(*exclude):
        if int(u) in row:
            scores[row[int(u)], int(i)] = float("-inf")
    return scores


@pytest.mark.parametrize("chunk_cells", [1, 64, 1 << 23])  # one user per chunk, a few, all at once
def test_masked_scores_match_brute_force_for_any_user_subset_and_chunking(chunk_cells):
    torch.manual_seed(0)
    net = NeuMF(30, 17, 4, (8, 4)).eval()
    users = torch.tensor([0, 3, 4, 9, 10, 11, 29])  # sorted, with gaps (e.g. the test users)
    exclude = (torch.randint(30, (120,)), torch.randint(17, (120,)))  # not sorted, users outside the subset too
    got = torch.cat([s for _, _, s in masked_scores(net, users, 17, exclude, chunk_cells)])
    ref = reference(net, users, 17, exclude).detach()
    assert torch.equal(torch.isinf(got), torch.isinf(ref))  # exactly the excluded pairs are masked
    assert torch.allclose(got[~torch.isinf(got)], ref[~torch.isinf(ref)], atol=1e-6)  # BLAS rounding per chunk shape


def test_top_k_is_best_first_excludes_and_pads_short_lists_with_minus_inf():
    torch.manual_seed(1)
    net = GMF(5, 6, 3).eval()
    users = torch.arange(5)
    exclude = (torch.tensor([0, 0, 0, 0, 0, 2]), torch.tensor([0, 1, 2, 3, 4, 5]))  # user 0 may get item 5 only
    idx, val = top_k(net, users, 6, 3, exclude, chunk_cells=8)
    assert idx.shape == (5, 3) and idx.dtype == torch.int32
    assert idx[0, 0] == 5 and torch.isinf(val[0, 1:]).all()
    assert 5 not in idx[2].tolist() and (val[:, :-1] >= val[:, 1:]).all()
    ref = reference(net, users, 6, exclude).detach().topk(3, dim=1)
    assert torch.allclose(val[1:], ref.values[1:], atol=1e-6) and torch.equal(idx[1:].long(), ref.indices[1:])


def test_users_must_be_sorted():
    with pytest.raises(ValueError, match="sorted ascending"):
        next(masked_scores(GMF(3, 3, 2), torch.tensor([2, 1]), 3))
