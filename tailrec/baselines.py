"""Simple baselines that share the scorer interface of :mod:`tailrec.evaluation`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from tailrec.evaluation import Scorer, evaluate_ranking, interaction_rows
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


EASE_L2_GRID = (100.0, 250.0, 500.0, 1000.0)


def ease_item_weights(train: pd.DataFrame, n_items: int, l2: float = 500.0) -> np.ndarray:
    """EASE's item-item matrix ``B`` (Steck, 2019), (n_items, n_items) float64.

    Solves ``min_B ||X - X B||^2 + l2 ||B||^2`` subject to ``diag(B) = 0``, where
    ``X`` is the binary user-item matrix of ``train``. With
    ``P = (XᵀX + l2 I)⁻¹`` the solution is ``B = I - P / diag(P)`` (column-wise).

    The matrix is dense, so memory grows with the square of the catalogue:
    fine for thousands of items, not for hundreds of thousands.
    """
    pairs = train[["user_index", "item_index"]].drop_duplicates()
    n_users = int(pairs["user_index"].max()) + 1 if len(pairs) else 0
    X = np.zeros((n_users, n_items))
    X[pairs["user_index"].to_numpy(), pairs["item_index"].to_numpy()] = 1.0
    gram = X.T @ X  # (n_items, n_items) co-occurrence counts
    gram[np.diag_indices(n_items)] += l2
    P = np.linalg.inv(gram)
    B = -P / np.diag(P)  # divide column j by P[j, j]
    B[np.diag_indices(n_items)] = 0.0
    return B


def item_item_scorer(B: np.ndarray, history: pd.DataFrame) -> Scorer:
    """Scores ``x B``: each user's 0/1 row of ``history`` times an item-item matrix.

    Users absent from ``history`` score zero everywhere.
    """
    rows_of = interaction_rows(history, len(B))
    return lambda users: rows_of(users) @ B  # (U, n_items) @ (n_items, n_items)


def ease_scorer(train: pd.DataFrame, n_items: int, l2: float = 500.0) -> Scorer:
    """EASE: a closed-form item-item model; a user's scores are their row of ``X B``.

    See :func:`ease_item_weights`. Users absent from ``train`` score zero everywhere.
    """
    return item_item_scorer(ease_item_weights(train, n_items, l2), train)


def fit_ease(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    n_items: int,
    l2_grid: tuple[float, ...] = EASE_L2_GRID,
    k: int = 10,
) -> tuple[Scorer, float]:
    """EASE with ``l2`` chosen on ``validation`` by NDCG@``k`` (at most the catalogue), refit on
    train + validation; and that ``l2``."""
    k = min(k, n_items)
    best = max(
        l2_grid,
        key=lambda l2: evaluate_ranking(
            ease_scorer(train, n_items, l2), validation, [train], n_items, k
        )["ndcg"].mean(),
    )
    return ease_scorer(pd.concat([train, validation]), n_items, best), best


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


def _user_item_csr(train: pd.DataFrame, n_users: int, n_items: int):
    from scipy.sparse import csr_matrix

    pairs = train[["user_index", "item_index"]].drop_duplicates()
    ones = np.ones(len(pairs), dtype=np.float32)
    return csr_matrix(
        (ones, (pairs["user_index"].to_numpy(), pairs["item_index"].to_numpy())),
        shape=(n_users, n_items),
    )


def _optional(module: str, package: str):
    """Import an optional baseline's library, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"This baseline needs the optional package {package!r}; install it with "
            f"pip install 'tailrec[baselines]' (or pip install {package})."
        ) from error


def lightfm_scorer(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    user_features=None,
    item_features=None,
    dim: int = 64,
    epochs: int = 30,
    seed: int = 42,
    threads: int = 1,
) -> Scorer:
    """LightFM with the WARP loss (needs the optional ``rectools-lightfm``).

    With more than one thread LightFM updates its weights in parallel without
    locks, so a rerun with the same seed gives slightly different figures;
    one thread is the default for that reason.

    ``user_features`` and ``item_features`` are optional sparse indicator
    matrices (rows: users or items); LightFM adds an identity block itself
    only when they are None, so pass ``[I | features]`` to keep per-ID vectors.
    """
    lightfm = _optional("lightfm", "rectools-lightfm")
    model = lightfm.LightFM(no_components=dim, loss="warp", random_state=seed)
    model.fit(
        _user_item_csr(train, n_users, n_items).tocoo(),
        user_features=user_features,
        item_features=item_features,
        epochs=epochs,
        num_threads=threads,
    )
    _, user_vectors = model.get_user_representations(user_features)
    item_bias, item_vectors = model.get_item_representations(item_features)

    def score(users: np.ndarray) -> np.ndarray:
        return user_vectors[users] @ item_vectors.T + item_bias

    return score


def implicit_scorer(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    algorithm: str = "als",
    dim: int = 64,
    seed: int = 42,
    threads: int = 1,
) -> Scorer:
    """implicit's ALS or BPR (needs the optional ``implicit``); ``algorithm`` is "als" or "bpr".

    One thread by default, as BPR's parallel updates are not reproducible."""
    if algorithm not in ("als", "bpr"):
        raise ValueError(f"algorithm must be 'als' or 'bpr', got {algorithm!r}.")
    module = _optional(f"implicit.{algorithm}", "implicit")
    limits = _optional("threadpoolctl", "threadpoolctl")
    # implicit runs its own threads; BLAS threads on top of them oversubscribe the cores.
    with limits.threadpool_limits(1, "blas"):
        if algorithm == "als":
            model = module.AlternatingLeastSquares(
                factors=dim, iterations=15, random_state=seed, num_threads=threads, use_gpu=False
            )
        else:
            model = module.BayesianPersonalizedRanking(
                factors=dim, iterations=100, random_state=seed, num_threads=threads, use_gpu=False
            )
        model.fit(_user_item_csr(train, n_users, n_items), show_progress=False)
    user_vectors = np.asarray(model.user_factors)
    item_vectors = np.asarray(model.item_factors)

    def score(users: np.ndarray) -> np.ndarray:
        return user_vectors[users] @ item_vectors.T

    return score
