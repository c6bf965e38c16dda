"""A bilinear model whose users are built from their history (and, optionally, profile text).

The course's :class:`~tailrec.model.BilinearModel` learns one ID vector per
user, so a user who arrives after training, or who has rated three films,
has no good vector. Here a user has no parameters of their own:

    u = (1 / sqrt(n)) * sum over the n items in the history of h_j  [+ P_profile(profile text)]
    i = e_i + P_item(item text)
    z = u · W · iᵀ + b_i

where ``h_j`` (a history-side item vector, ID plus projected text) and
``e_i`` (a target-side one) are learned per item. A new or few-shot user is
served by the same formula with no retraining: whatever they have rated is
enough. (The profile term is off by default; see ``use_profile``.)

Training is a softmax over the whole catalogue (cross-entropy, Adam): part
of each user's history is hidden (``input_dropout``), and the model must
give high probability to every item of the full history. A share of users
has the whole history hidden (``profile_only_rate``), so the item bias (and
the profile path, when on) learns the prior that serves a user nobody knows.
For catalogues too large for that, ``negatives`` > 0 estimates the softmax
from each user's items and a uniform sample (:mod:`tailrec.sampled_softmax`).

A self-supervised term (``ssl_weight``) aligns each item's ID view ``e_i``
with its text view ``P_item(text)`` by contrastive InfoNCE: an item's two
views must be closer to each other than to other items' views, which ties
rarely rated items to the text of similar, well-known ones.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from tailrec.checks import require_whole_number
from tailrec.distributed import process_group, shard, summed
from tailrec.evaluation import Scorer, evaluate_ranking
from tailrec.model import checked_feature_mean, checked_features
from tailrec.sampled_softmax import UserItemRows, sampled_batch_loss
from tailrec.training import (
    EarlyStopping,
    TrainHistory,
    load_training_state,
    save_training_state,
)

logger = logging.getLogger(__name__)


@dataclass
class HistoryModelConfig:
    """Shape and training of a :class:`HistoryBilinearModel`.

    Attributes
    ----------
    dim : int
        Size of the user and item vectors.
    use_item_text : bool
        Add projected item-text features to the item vectors (both sides).
    use_profile : bool
        Add the projected profile text to the user vector. Off by default: on
        MovieLens-100k the profile (age band, gender, occupation, region) is
        close to unique per user, the projection memorises the training users
        through it, and users known only by their profile were ranked far
        worse than by popularity (NDCG@10 0.29 against 0.52 for users with no
        ratings in the few-shot benchmark). :mod:`tailrec.profile_prior` uses
        the profile text in a way that generalises.
        Validation on warm users does not catch this, since their history
        outweighs the profile.
    profile_rank : int
        Width of the profile projection's bottleneck; a narrow one keeps the
        profile from acting as a user ID that the model could memorise.
    ssl_weight : float
        Weight of the contrastive ID-text alignment term (0 turns it off; it
        needs ``use_item_text``).
    ssl_temperature : float
        Temperature of that InfoNCE term.
    input_dropout : float
        Share of each user's history hidden from the input at each step.
    profile_only_rate : float
        Share of users per step whose whole history is hidden.
    epochs : int
        Upper bound on passes over the users.
    batch_size : int
        Users per step.
    lr : float
        Adam learning rate.
    eval_every, patience : int
        Validation NDCG@``eval_k`` is measured every ``eval_every`` epochs;
        training stops after ``patience`` epochs without a better one.
    eval_k : int
    seed : int
        Seeds the initial weights, the dropout masks and the batch order.
    negatives : int
        0 (the default): the loss is a softmax over the whole catalogue.
        N > 0: a sampled softmax over each user's items and N items drawn
        uniformly per batch (:mod:`tailrec.sampled_softmax`), whose loss costs
        interactions + users x N per epoch instead of users x items; for
        catalogues where ``batch_size x n_items`` logits per step are too many. On
        MovieLens-100k it ranks a little worse than the full softmax (see the
        README's Speed section).
    """

    dim: int = 128
    use_item_text: bool = True
    use_profile: bool = False
    profile_rank: int = 16
    ssl_weight: float = 0.1
    ssl_temperature: float = 0.1
    input_dropout: float = 0.7
    profile_only_rate: float = 0.1
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    eval_every: int = 5
    patience: int = 20
    eval_k: int = 10
    seed: int = 42
    negatives: int = 0

    def __post_init__(self) -> None:
        counts = ("dim", "profile_rank", "epochs", "batch_size", "eval_every", "patience")
        for name in counts:
            require_whole_number(f"HistoryModelConfig.{name}", getattr(self, name), minimum=1)
        require_whole_number("HistoryModelConfig.eval_k", self.eval_k, minimum=1)
        require_whole_number("HistoryModelConfig.seed", self.seed, minimum=0)
        require_whole_number("HistoryModelConfig.negatives", self.negatives, minimum=0)
        # A numpy integer (from a grid in an array) would not survive JSON or a saved state.
        for name in (*counts, "eval_k", "seed", "negatives"):
            setattr(self, name, int(getattr(self, name)))
        for name in ("input_dropout", "profile_only_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"HistoryModelConfig.{name} must be in [0, 1), got {value!r}.")
        for name in ("ssl_weight", "lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"HistoryModelConfig.{name} must be a finite number >= 0.")
        if not (math.isfinite(self.ssl_temperature) and self.ssl_temperature > 0):
            raise ValueError("HistoryModelConfig.ssl_temperature must be a finite number > 0.")

    def to_dict(self) -> dict:
        return asdict(self)

    def capped(self, max_epochs: int | None) -> HistoryModelConfig:
        """These settings with at most ``max_epochs`` epochs (unchanged for None): quick runs."""
        if max_epochs is None:
            return self
        return replace(self, epochs=min(self.epochs, max_epochs))


class HistoryBilinearModel(nn.Module):
    """``z = u W iᵀ + b_i`` with ``u`` built from a profile and a history (see the module).

    Parameters
    ----------
    item_features : torch.Tensor of float32, shape (n_items, F)
        Frozen text-encoder features of the items.
    profile_features : torch.Tensor of float32, shape (n_users, F)
        Frozen features of every user's profile text; their mean is
        kept and subtracted from every profile, so that what all users share
        does not become a large common offset.
    config : HistoryModelConfig
    """

    def __init__(
        self,
        item_features: torch.Tensor,
        profile_features: torch.Tensor,
        config: HistoryModelConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config or HistoryModelConfig()
        item_features = checked_features("item_features", item_features)
        # Only the profiles' mean is kept: no copy of a table with a row per user.
        profile_mean = checked_feature_mean("profile_features", profile_features)
        if item_features.shape[1] != len(profile_mean):
            raise ValueError(
                f"item_features and profile_features must come from one encoder (same width); "
                f"got {item_features.shape[1]} and {len(profile_mean)}."
            )
        generator = torch.Generator().manual_seed(self.config.seed)
        self.n_items, width = item_features.shape
        d = self.config.dim
        self.register_buffer("item_features", item_features)
        self.register_buffer("profile_mean", profile_mean)
        self.item_embeddings = nn.Parameter(_normal((self.n_items, d), 0.05, generator))
        self.history_embeddings = nn.Parameter(_normal((self.n_items, d), 0.05, generator))
        self.item_text_projection = nn.Parameter(_normal((width, d), width**-0.5, generator))
        self.history_text_projection = nn.Parameter(_normal((width, d), width**-0.5, generator))
        rank = self.config.profile_rank
        self.profile_down = nn.Parameter(_normal((width, rank), width**-0.5, generator))
        # Zero: training starts as if there were no profile, and adds what helps.
        self.profile_up = nn.Parameter(torch.zeros(rank, d))
        self.W = nn.Parameter(torch.eye(d))
        self.item_bias = nn.Parameter(torch.zeros(self.n_items))

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Target-side vectors of ``items`` (indices), or of every item: (n, dim)."""
        return self._side_vectors(self.item_embeddings, self.item_text_projection, items)

    def history_item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """History-side vectors of ``items`` (indices), or of every item: (n, dim)."""
        return self._side_vectors(self.history_embeddings, self.history_text_projection, items)

    def _side_vectors(
        self, embeddings: torch.Tensor, projection: torch.Tensor, items: torch.Tensor | None
    ) -> torch.Tensor:
        """ID embedding plus projected text, for ``items`` or every item."""
        features = self.item_features
        if items is not None:  # only the rows asked for: a large catalogue is never projected whole
            embeddings = embeddings.index_select(0, items)
            features = features.index_select(0, items)
        if self.config.use_item_text:
            return embeddings + features @ projection
        return embeddings

    def item_vectors_from_text(self, item_features: torch.Tensor) -> torch.Tensor:
        """Target-side vectors of items known only by their text, ``P_item(text)``.

        A film that training never saw has no ID embedding ``e_i`` and no bias
        ``b_i``; its vector is its projected text alone. Score it as
        ``u W vᵀ`` (:meth:`user_vectors`, :attr:`W`) with a neutral bias: a
        bias shared by all new items does not change how they rank.

        Parameters
        ----------
        item_features : torch.Tensor of float32, shape (N, F)
            Features from the encoder that made the model's ``item_features``.

        Returns
        -------
        torch.Tensor of float32, shape (N, dim)
        """
        if not self.config.use_item_text:
            raise ValueError(
                "This model was trained without item text (use_item_text=False), so it cannot "
                "place an item known only by its text; train with use_item_text=True."
            )
        features = checked_features("item_features", item_features)
        if features.shape[1] != self.item_features.shape[1]:
            raise ValueError(
                f"item_features must come from the model's encoder (width "
                f"{self.item_features.shape[1]}); got width {features.shape[1]}."
            )
        return features.to(self.item_text_projection.device) @ self.item_text_projection

    def profile_term(self, profiles: torch.Tensor) -> torch.Tensor:
        """The profile's share of the user vectors, (B, dim), from profile features (B, F)."""
        return (profiles - self.profile_mean) @ self.profile_down @ self.profile_up

    def user_vectors(self, history: torch.Tensor, profiles: torch.Tensor) -> torch.Tensor:
        """User vectors (B, dim) from histories (B, n_items) of 0/1 and profiles (B, F)."""
        counts = history.sum(1, keepdim=True).clamp(min=1.0)
        users = (history @ self.history_item_vectors()) / counts.sqrt()
        if self.config.use_profile:
            users = users + self.profile_term(profiles)
        return users

    def forward(self, history: torch.Tensor, profiles: torch.Tensor) -> torch.Tensor:
        """Logits of every item, (B, n_items), for histories (B, n_items) and profiles (B, F)."""
        # (B, d) @ (d, d) @ (d, n_items) -> (B, n_items)
        return (
            self.user_vectors(history, profiles) @ self.W @ self.item_vectors().T + self.item_bias
        )

    def alignment_loss(self, items: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE between the ID and text views of ``items`` (B,)."""
        ids = F.normalize(self.item_embeddings[items], dim=-1)
        texts = F.normalize(self.item_features[items] @ self.item_text_projection, dim=-1)
        logits = ids @ texts.T / self.config.ssl_temperature  # (B, B); the diagonal matches
        target = torch.arange(len(items), device=logits.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def history_matrix(interactions: pd.DataFrame, n_users: int, n_items: int) -> torch.Tensor:
    """The 0/1 user-item matrix of ``interactions`` as a sparse (n_users, n_items) tensor."""
    pairs = interactions[["user_index", "item_index"]].drop_duplicates().to_numpy()
    return torch.sparse_coo_tensor(
        torch.as_tensor(pairs.T.copy(), dtype=torch.long),
        torch.ones(len(pairs)),
        (n_users, n_items),
        check_invariants=True,  # indices come from user data: check them once, here
    ).coalesce()


def _rows(matrix: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
    return matrix.index_select(0, users).to_dense()


def history_scorer(
    model: HistoryBilinearModel,
    history: pd.DataFrame,
    profile_features: np.ndarray | torch.Tensor,
    log_probabilities: bool = False,
    user_steps: int = 0,
) -> Scorer:
    """Score users from their ``history`` (interactions) and profile features (n_users, F).

    With ``log_probabilities`` the scores are log-softmax values, which can be
    added to other models' scores on a common scale. ``user_steps`` > 0 tunes
    each scored user's vector on their own history first
    (:func:`tune_user_vectors`); the model's weights are never changed.
    """
    require_whole_number("user_steps", user_steps, minimum=0)
    profiles = torch.as_tensor(profile_features, dtype=torch.float32)
    check_indices(history, len(profiles), model.n_items)
    matrix = history_matrix(history, len(profiles), model.n_items)
    device = model.W.device

    def score(users: np.ndarray) -> np.ndarray:
        model.eval()
        batch = torch.tensor(users, dtype=torch.long)
        if len(batch) and (batch.min() < 0 or batch.max() >= len(profiles)):
            raise ValueError(
                f"User indices must lie in 0..{len(profiles) - 1} (one per profile row); "
                f"got {batch.min().item()}..{batch.max().item()}."
            )
        rows, batch_profiles = _rows(matrix, batch).to(device), profiles[batch].to(device)
        with torch.no_grad():
            if user_steps:
                vectors = tune_user_vectors(model, rows, batch_profiles, user_steps)
                logits = vectors @ model.W @ model.item_vectors().T + model.item_bias
            else:
                logits = model(rows, batch_profiles)
            logits = logits.float()
            if log_probabilities:
                logits = torch.log_softmax(logits, dim=-1)
            return logits.cpu().numpy()

    return score


def tune_user_vectors(
    model: HistoryBilinearModel,
    history: torch.Tensor,
    profiles: torch.Tensor,
    steps: int,
    lr: float = 0.5,
    l2: float = 0.1,
) -> torch.Tensor:
    """User vectors moved by a few gradient steps towards each user's own history.

    The fold-in ``u`` is a fixed function of the history; this adds an offset
    ``d`` per user, fitted by ``steps`` gradient-descent steps on that user's softmax
    cross-entropy over their own items, with an L2 penalty ``l2 * |d|²`` that
    keeps it near the fold-in. Only the offsets are fitted: the model is
    untouched, so other users' scores cannot change. Each user's loss is
    separate (summed, not averaged), and plain gradient descent (not Adam,
    which would blow float noise in near-zero gradients up to full steps)
    keeps a user's vector independent of who else is in the batch.

    Parameters
    ----------
    model : HistoryBilinearModel
    history : torch.Tensor, shape (B, n_items)
        0/1 rows; users with an empty row keep their fold-in vector.
    profiles : torch.Tensor, shape (B, F)
    steps : int
    lr, l2 : float

    Returns
    -------
    torch.Tensor, shape (B, dim)
    """
    with torch.no_grad():
        base = model.user_vectors(history, profiles)
        keys = model.W @ model.item_vectors().T  # (dim, n_items)
        bias = model.item_bias
    counts = history.sum(1, keepdim=True)
    offset = torch.zeros_like(base, requires_grad=True)
    optimizer = torch.optim.SGD([offset], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            log_p = torch.log_softmax((base + offset) @ keys + bias, dim=-1)
            fit = -(log_p * history).sum(1) / counts.squeeze(1).clamp(min=1.0)
            loss = (fit + l2 * offset.pow(2).sum(1)).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return (base + offset.detach() * (counts > 0)).detach()


def train_history_model(
    model: HistoryBilinearModel,
    train: pd.DataFrame,
    validation: pd.DataFrame | None,
    profile_features: np.ndarray | torch.Tensor,
    device: torch.device | str = "cpu",
    epochs: int | None = None,
    state_path: str | Path | None = None,
) -> TrainHistory:
    """Fit ``model`` in place; with ``validation``, stop early and keep the best epoch.

    Without ``validation`` it trains for exactly ``epochs`` (for a refit on
    train + validation with the epoch count chosen before). ``state_path``
    makes an interrupted run resumable, as in :func:`tailrec.training.train`.
    With ``config.negatives`` > 0 the loss is a sampled softmax
    (:mod:`tailrec.sampled_softmax`). Under torchrun each process trains on
    its shard of ``train`` (:mod:`tailrec.distributed`).
    """
    config = model.config
    epochs = config.epochs if epochs is None else epochs
    require_whole_number("epochs", epochs, minimum=1)
    profiles = torch.as_tensor(profile_features, dtype=torch.float32)
    if len(train) == 0:
        raise ValueError("Training needs at least one interaction; the training set is empty.")
    check_indices(train, len(profiles), model.n_items)
    rank, world = process_group()
    if world > 1 and validation is not None:
        raise ValueError(
            "Distributed training runs a fixed number of epochs: early stopping would need "
            "every user's history in one process. Pass validation=None and epochs=N (choose "
            "N with a single-process run)."
        )
    train = shard(train, rank, world)
    device = torch.device(device)
    model.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    batches = _BatchLoss(model, train, profiles, generator, device)
    active = torch.nonzero(batches.global_degrees > 0).squeeze(1)
    step = batches
    if world > 1:
        on_gpu = device.type == "cuda"
        step = DistributedDataParallel(
            batches, device_ids=[device] if on_gpu else None, find_unused_parameters=True
        )
    # The sampled loss is for large catalogues, where the update of every item's
    # vectors at each step dominates: the fused update does it in one pass.
    fused = bool(config.negatives) or None
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=fused)
    history = TrainHistory()
    stopping = EarlyStopping(model, history, config.patience)
    done = 0
    if state_path is not None and Path(state_path).exists():
        done = load_training_state(state_path, model, optimizer, generator, stopping, config)
        logger.info("Resuming training from %s after epoch %d", state_path, done)
    if history.stopped_early:
        done = epochs
    for epoch in range(done + 1, epochs + 1):
        started = time.perf_counter()
        model.train()
        order = active[torch.randperm(len(active), generator=generator)]
        total = torch.zeros((), dtype=torch.float64)
        for start in range(0, len(order), config.batch_size):
            loss, reported = step(order[start : start + config.batch_size])
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"The training loss became {loss.item()} at epoch {epoch}; "
                    "lower the learning rate (HistoryModelConfig.lr)."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += reported
        history.train_loss.append(float(summed(total)) / len(active))
        history.seconds.append(time.perf_counter() - started)
        stop = False
        if validation is None or (epoch % config.eval_every and epoch < epochs):
            history.validation_ndcg.append(math.nan)
        else:
            scorer = history_scorer(model, train, profiles)
            ndcg = float(
                evaluate_ranking(scorer, validation, [train], model.n_items, config.eval_k)[
                    "ndcg"
                ].mean()
            )
            logger.info(
                "epoch %d: loss %.4f, validation NDCG %.4f", epoch, history.train_loss[-1], ndcg
            )
            stop = stopping.should_stop(epoch, ndcg)
        if state_path is not None and rank == 0:
            save_training_state(state_path, epoch, model, optimizer, generator, stopping, config)
        if stop:
            break
    if validation is None:
        history.best_epoch = epochs
    else:
        stopping.restore()
    return history


class _BatchLoss(nn.Module):
    """One step's loss for a batch of users: the module that DistributedDataParallel wraps.

    Every process is given the same batch and draws the same random numbers;
    it scores only the users of its shard. Their summed loss is divided by
    the batch size and multiplied by the number of processes, so that the
    gradient DDP averages over processes is that of the whole batch.
    """

    def __init__(
        self,
        model: HistoryBilinearModel,
        train: pd.DataFrame,
        profiles: torch.Tensor,
        generator: torch.Generator,
        device: torch.device,
    ) -> None:
        super().__init__()
        self.model = model
        self.profiles, self.generator, self.device = profiles, generator, device
        self.world = process_group()[1]
        if model.config.negatives:
            self.rows = UserItemRows(train, len(profiles))
            degrees = self.rows.degrees()
        else:
            self.matrix = history_matrix(train, len(profiles), model.n_items)
            degrees = torch.bincount(
                torch.as_tensor(self.matrix.indices()[0]), minlength=len(profiles)
            )
        self.global_degrees = summed(degrees)
        self.autocast = torch.autocast(
            device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"
        )

    def forward(self, users: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The loss to minimise, and this process's summed per-user loss (for the record)."""
        model, config = self.model, self.model.config
        with self.autocast:
            if config.negatives:
                user_loss, n_own = sampled_batch_loss(
                    model,
                    self.rows,
                    self.global_degrees,
                    users,
                    self.profiles,
                    self.generator,
                    self.device,
                )
            else:
                per_user = self._full_softmax_loss(users)
                user_loss, n_own = per_user.sum(), len(per_user)
        if self.world == 1 and not config.negatives:
            loss = per_user.mean()
        else:  # the sum over the whole batch, once DDP averages it over the processes
            loss = user_loss * (self.world / len(users))
        if n_own == 0:  # a batch with none of this shard's users: keep every parameter in play
            loss = loss + 0.0 * sum(p.sum() for p in model.parameters())
        if config.ssl_weight > 0 and config.use_item_text:
            n_items = model.n_items
            items = torch.randperm(n_items, generator=self.generator)[:512].to(self.device)
            alignment = model.alignment_loss(items)
            loss = loss + config.ssl_weight * alignment
            user_loss = user_loss + config.ssl_weight * alignment * n_own
        return loss, float(user_loss.detach())

    def _full_softmax_loss(self, users: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy over the whole catalogue of each of this shard's users."""
        config = self.model.config
        full = _rows(self.matrix, users)
        # Hide part of each history, and all of it for some users (the profile must speak).
        keep = torch.rand(full.shape, generator=self.generator) >= config.input_dropout
        keep &= torch.rand(len(users), 1, generator=self.generator) >= config.profile_only_rate
        if self.world > 1:  # other shards' users have empty rows here
            own = full.sum(1) > 0
            full, keep, users = full[own], keep[own], users[own]
        seen = (full * keep).to(self.device)
        full = full.to(self.device)
        logits = self.model(seen, self.profiles[users].to(self.device))
        log_p = torch.log_softmax(logits.float(), dim=-1)
        return -(log_p * full).sum(1) / full.sum(1).clamp(min=1.0)


def check_indices(interactions: pd.DataFrame, n_users: int, n_items: int) -> None:
    """Refuse user or item indices with no row in the profile or item features."""
    for column, size, features in (
        ("user_index", n_users, "profile_features"),
        ("item_index", n_items, "item_features"),
    ):
        values = interactions[column].to_numpy()
        if len(values) and (values.min() < 0 or values.max() >= size):
            raise ValueError(
                f"{column} runs from {values.min()} to {values.max()}, but {features} has "
                f"{size} rows; pass one feature row per index (0 to {size - 1})."
            )


def _normal(shape: tuple[int, int], std: float, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator) * std
