"""Simple baselines that share the scorer interface of :mod:`tailrec.evaluation`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from tailrec.evaluation import Scorer, evaluate_ranking
from tailrec.training import NegativeSampler


def popularity_scorer(train: pd.DataFrame, n_items: int) -> Scorer:
    """Score every item by its number of training interactions, the same for every user."""
    counts = np.bincount(train["item_index"].to_numpy(), minlength=n_items).astype(np.float64)

    def score(users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(counts, (len(users), n_items))

    return score


def random_scorer(n_items: int, seed: int) -> Scorer:
    """Independent uniform scores for every (user, item) pair, fixed by ``seed``.

    The same user always gets the same scores, whatever batch it comes in.
    """

    def score(users: np.ndarray) -> np.ndarray:
        rows = [np.random.default_rng([seed, int(u)]).random(n_items) for u in users]
        return np.stack(rows) if rows else np.zeros((0, n_items))

    return score


def ease_scorer(train: pd.DataFrame, n_items: int, l2: float = 500.0) -> Scorer:
    """EASE: a closed-form item-item model (Steck, 2019).

    Solves ``min_B ||X - X B||^2 + l2 ||B||^2`` subject to ``diag(B) = 0``, where
    ``X`` is the binary user-item matrix of ``train``. With
    ``P = (XᵀX + l2 I)⁻¹`` the solution is ``B = I - P / diag(P)`` (column-wise),
    and a user's scores are their row of ``X B``.

    The item-item matrix is dense, (n_items, n_items) float64, so memory grows
    with the square of the catalogue: fine for thousands of items, not for
    hundreds of thousands.
    """
    n_users = int(train["user_index"].max()) + 1 if len(train) else 0
    X = np.zeros((n_users, n_items))
    X[train["user_index"].to_numpy(), train["item_index"].to_numpy()] = 1.0
    gram = X.T @ X  # (n_items, n_items) co-occurrence counts
    gram[np.diag_indices(n_items)] += l2
    P = np.linalg.inv(gram)
    B = -P / np.diag(P)  # divide column j by P[j, j]
    B[np.diag_indices(n_items)] = 0.0

    def score(users: np.ndarray) -> np.ndarray:
        rows = np.zeros((len(users), n_items))
        known = users < n_users
        rows[known] = X[users[known]] @ B  # (B, n_items) @ (n_items, n_items)
        return rows

    return score


def bpr_mf_scorer(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    n_users: int,
    n_items: int,
    dim: int = 64,
    epochs: int = 30,
    lr: float = 5e-3,
    l2: float = 1e-5,
    batch_size: int = 1024,
    patience: int = 3,
    seed: int = 42,
) -> Scorer:
    """ID-only matrix factorisation trained with BPR (Rendle et al., 2009).

    Each step raises the score of an observed item above a uniformly drawn
    unobserved one: loss ``-log sigmoid(u·i - u·j)`` plus ``l2`` times the squared
    norms of the three vectors. Adam, early stopping on validation NDCG@10,
    and the best epoch's vectors are kept. Seeded and deterministic on the CPU.
    """
    generator = torch.Generator().manual_seed(seed)
    users_emb = torch.nn.Parameter(torch.randn(n_users, dim, generator=generator) * 0.05)
    items_emb = torch.nn.Parameter(torch.randn(n_items, dim, generator=generator) * 0.05)
    optimizer = torch.optim.Adam([users_emb, items_emb], lr=lr)
    sampler = NegativeSampler(train, n_items, generator)
    users = torch.tensor(train["user_index"].to_numpy(), dtype=torch.long)
    items = torch.tensor(train["item_index"].to_numpy(), dtype=torch.long)

    def score(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return (users_emb[torch.tensor(batch, dtype=torch.long)] @ items_emb.T).numpy()

    best_ndcg, best, since_best = -1.0, None, 0
    for _ in range(epochs):
        order = torch.randperm(len(users), generator=generator)
        for start in range(0, len(users), batch_size):
            batch = order[start : start + batch_size]
            u, i = users[batch], items[batch]
            j = sampler.sample(u, 1)[:, 0]
            u_vec, i_vec, j_vec = users_emb[u], items_emb[i], items_emb[j]
            margin = (u_vec * (i_vec - j_vec)).sum(-1)
            penalty = u_vec.pow(2).sum() + i_vec.pow(2).sum() + j_vec.pow(2).sum()
            loss = -torch.nn.functional.logsigmoid(margin).mean() + l2 * penalty / len(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        ndcg = evaluate_ranking(score, validation, [train], n_items)["ndcg"].mean()
        if ndcg > best_ndcg:
            best_ndcg, since_best = ndcg, 0
            best = (users_emb.detach().clone(), items_emb.detach().clone())
        else:
            since_best += 1
            if since_best >= patience:
                break
    with torch.no_grad():
        users_emb.copy_(best[0])
        items_emb.copy_(best[1])
    return score
