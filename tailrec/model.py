"""The bilinear recommender: z = u · W · iᵀ (+ an item bias).

A user vector ``u`` and an item vector ``i`` are each the sum of a learned ID
embedding and a linear projection of frozen text-encoder features. A square
matrix ``W`` couples the two spaces. With ``W`` equal to the identity the
model is a plain dot product; learning ``W`` lets a user dimension weigh any
item dimension.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class ModelConfig:
    """Shape and parts of a :class:`BilinearModel`.

    Attributes
    ----------
    dim : int
        Size of the user and item vectors.
    use_ids : bool
        Learn an ID embedding per user and per item.
    use_text : bool
        Add the projected text features.
    item_bias : bool
        Add a learned per-item bias ``b_i`` to the score (a popularity term).
    init_std : float
        Standard deviation of the initial ID embeddings.
    """

    dim: int = 64
    use_ids: bool = True
    use_text: bool = True
    item_bias: bool = True
    init_std: float = 0.05

    def to_dict(self) -> dict:
        return asdict(self)


class BilinearModel(nn.Module):
    """Score user-item pairs with ``z = u W iᵀ + b_i``.

    Parameters
    ----------
    n_users, n_items : int
        Number of users and items known at training time.
    user_features : torch.Tensor of float32, shape (n_users, F), optional
        Frozen text-encoder features of the users; needed when ``config.use_text``.
    item_features : torch.Tensor of float32, shape (n_items, F), optional
        Frozen text-encoder features of the items.
    config : ModelConfig
    generator : torch.Generator, optional
        Source of randomness for the initial weights.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        user_features: torch.Tensor | None = None,
        item_features: torch.Tensor | None = None,
        config: ModelConfig | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        if not (self.config.use_ids or self.config.use_text):
            raise ValueError("The model needs ID embeddings, text features or both; both are off.")
        if self.config.use_text and (user_features is None or item_features is None):
            raise ValueError(
                "config.use_text is on but user_features or item_features is missing; "
                "pass both feature matrices or set ModelConfig(use_text=False)."
            )
        self.n_users, self.n_items = n_users, n_items
        d = self.config.dim
        if self.config.use_ids:
            self.user_embeddings = nn.Embedding(n_users, d)
            self.item_embeddings = nn.Embedding(n_items, d)
            nn.init.normal_(
                self.user_embeddings.weight, std=self.config.init_std, generator=generator
            )
            nn.init.normal_(
                self.item_embeddings.weight, std=self.config.init_std, generator=generator
            )
        if self.config.use_text:
            user_features = checked_features("user_features", user_features, n_users)
            item_features = checked_features("item_features", item_features, n_items)
            # Buffers: saved with the model, moved with .to(), but never trained.
            self.register_buffer("user_features", user_features)
            self.register_buffer("item_features", item_features)
            self.user_text_projection = nn.Linear(user_features.shape[1], d, bias=False)
            self.item_text_projection = nn.Linear(item_features.shape[1], d, bias=False)
            for layer in (self.user_text_projection, self.item_text_projection):
                std = 1.0 / layer.in_features**0.5
                nn.init.normal_(layer.weight, std=std, generator=generator)
        # Start from the identity so the first scores are plain dot products.
        self.W = nn.Parameter(torch.eye(d))
        if self.config.item_bias:
            self.item_bias = nn.Parameter(torch.zeros(n_items))

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """User vectors ``u``, shape (B, dim), for a (B,) int64 tensor of user indices."""
        parts = []
        if self.config.use_ids:
            parts.append(self.user_embeddings(users))
        if self.config.use_text:
            parts.append(self.user_text_projection(self.user_features[users]))
        return torch.stack(parts).sum(0)

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors ``i``, shape (B, dim); all items when ``items`` is None."""
        if items is None:
            items = torch.arange(self.n_items, device=self.W.device)
        parts = []
        if self.config.use_ids:
            parts.append(self.item_embeddings(items))
        if self.config.use_text:
            parts.append(self.item_text_projection(self.item_features[items]))
        return torch.stack(parts).sum(0)

    def user_vectors_from_text(self, features: torch.Tensor) -> torch.Tensor:
        """Vectors for users unknown at training time, from text features (B, F) alone."""
        if not self.config.use_text:
            raise ValueError(
                "This model was trained without text features, so it cannot "
                "place a user known only by text; train with use_text=True."
            )
        return self.user_text_projection(features.to(self.W.device).float())

    def item_vectors_from_text(self, features: torch.Tensor) -> torch.Tensor:
        """Vectors for items unknown at training time, from text features (B, F) alone."""
        if not self.config.use_text:
            raise ValueError(
                "This model was trained without text features, so it cannot "
                "place an item known only by text; train with use_text=True."
            )
        return self.item_text_projection(features.to(self.W.device).float())

    def pair_scores(self, user_vecs: torch.Tensor, item_vecs: torch.Tensor) -> torch.Tensor:
        """Bilinear score of matched rows: (B, d) and (B, d) -> (B,)."""
        # u W: (B, d) @ (d, d) -> (B, d); then a row-wise dot product with i.
        return ((user_vecs @ self.W) * item_vecs).sum(-1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits z for pairs: users (B,) and items (B,) int64 -> (B,) float."""
        z = self.pair_scores(self.user_vectors(users), self.item_vectors(items))
        if self.config.item_bias:
            z = z + self.item_bias[items]
        return z

    def score_all(
        self, users: torch.Tensor | None = None, user_vecs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of every item for each user: (B,) -> (B, n_items).

        ``user_vecs`` (B, dim) replaces the lookup, for users built from text.
        """
        if user_vecs is None:
            if users is None:
                raise ValueError("Pass user indices or user vectors to score_all.")
            user_vecs = self.user_vectors(users)
        z = self.score_vectors(user_vecs, self.item_vectors())
        if self.config.item_bias:
            z = z + self.item_bias
        return z

    def score_vectors(self, user_vecs: torch.Tensor, item_vecs: torch.Tensor) -> torch.Tensor:
        """Bilinear scores of every user against every item: (B, d), (M, d) -> (B, M)."""
        # (B, d) @ (d, d) @ (d, M) -> (B, M)
        return user_vecs @ self.W @ item_vecs.T


def checked_features(name: str, features: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """A float32 copy of ``features`` after checking its shape and values.

    ``rows`` is the number of rows required; None asks only for at least one.
    """
    features = torch.as_tensor(features).float().clone()
    n = features.shape[0] if features.ndim == 2 else -1
    if n < 1 or (rows is not None and n != rows):
        wanted = "(N, F) with N >= 1" if rows is None else f"({rows}, F)"
        raise ValueError(f"{name} must have shape {wanted}; got {tuple(features.shape)}.")
    _refuse_non_finite(name, features)
    return features


def checked_feature_mean(name: str, features: torch.Tensor) -> torch.Tensor:
    """The float32 mean row of ``features``, checked as :func:`checked_features` does, no copy.

    For large feature tables (a profile per user, millions of rows) read only
    for their mean: the check runs in blocks, so memory does not double.
    """
    features = torch.as_tensor(features)
    if features.ndim != 2 or features.shape[0] < 1:
        raise ValueError(f"{name} must have shape (N, F) with N >= 1; got {tuple(features.shape)}.")
    _refuse_non_finite(name, features)
    return features.float().mean(0)  # .float() of float32 features is the same tensor


def _refuse_non_finite(name: str, features: torch.Tensor) -> None:
    """Refuse NaN or infinite features, checked in blocks so that no full-size mask is made."""
    for start in range(0, features.shape[0], 65_536):
        if not torch.isfinite(features[start : start + 65_536].float()).all():
            raise ValueError(
                f"{name} holds NaN or infinite values (after conversion to float32); "
                "re-encode the texts with an empty embedding cache."
            )
