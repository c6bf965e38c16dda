"""Training: binary cross-entropy against sampled negatives, Adam, early stopping.

Each observed (user, item) pair is a positive (label 1). For each positive,
``n_negatives`` items the user has not interacted with are drawn uniformly
(label 0). The loss is the binary cross-entropy of ``sigmoid(z)``. After each
epoch the model is ranked on the validation set; training stops when the
validation NDCG@k has not improved for ``patience`` epochs, and the best
epoch's weights are restored.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from tailrec.checks import require_whole_number
from tailrec.evaluation import evaluate_ranking, model_scorer
from tailrec.files import atomic_write
from tailrec.model import BilinearModel

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Settings of :func:`train`.

    Attributes
    ----------
    epochs : int
        Upper bound on passes over the training positives.
    batch_size : int
        Positives per step (each comes with ``n_negatives`` negatives).
    lr : float
        Adam learning rate.
    weight_decay : float
        Adam's L2 penalty on all trained weights.
    n_negatives : int
        Negatives drawn per positive.
    patience : int
        Epochs without a better validation NDCG@k before stopping.
    eval_k : int
        List length of the validation NDCG.
    seed : int
        Seeds the negative sampling and the batch order.
    progress : bool
        Show a tqdm bar with the loss.
    """

    epochs: int = 30
    batch_size: int = 1024
    lr: float = 5e-3
    weight_decay: float = 0.0
    n_negatives: int = 4
    patience: int = 3
    eval_k: int = 10
    seed: int = 42
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "n_negatives", "patience", "eval_k"):
            require_whole_number(f"TrainConfig.{name}", getattr(self, name), minimum=1)
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise ValueError(f"TrainConfig.lr must be a finite number >= 0, got {self.lr!r}.")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainHistory:
    """Per-epoch record of a training run."""

    train_loss: list[float] = field(default_factory=list)
    validation_ndcg: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "epoch": np.arange(1, len(self.train_loss) + 1),
                "train_loss": self.train_loss,
                "validation_ndcg": self.validation_ndcg,
            }
        )

    def to_dict(self) -> dict:
        return asdict(self)


class EarlyStopping:
    """Keep the weights of the epoch with the best validation NDCG, and say when to stop.

    Records each validation NDCG in ``history``; stops once ``patience``
    epochs have passed without a better one. :meth:`restore` puts the best
    weights back into the model.
    """

    def __init__(self, model: torch.nn.Module, history: TrainHistory, patience: int) -> None:
        self.model, self.history, self.patience = model, history, patience
        self.best_ndcg = -math.inf
        self.best_state = copy.deepcopy(model.state_dict())

    def should_stop(self, epoch: int, ndcg: float) -> bool:
        """Record ``ndcg`` for the 1-based ``epoch``; True when training should end."""
        if not math.isfinite(ndcg):
            raise ValueError(
                "The validation NDCG is undefined (no validation user has a held-out item); "
                "early stopping needs a validation set with at least one interaction."
            )
        self.history.validation_ndcg.append(ndcg)
        if ndcg > self.best_ndcg:
            self.best_ndcg, self.history.best_epoch = ndcg, epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
            return False
        self.history.stopped_early = epoch - self.history.best_epoch >= self.patience
        return self.history.stopped_early

    def restore(self) -> None:
        self.model.load_state_dict(self.best_state)


class NegativeSampler:
    """Draw items a user has not interacted with in training, uniformly and reproducibly."""

    def __init__(self, train: pd.DataFrame, n_items: int, generator: torch.Generator) -> None:
        self.n_items = n_items
        self.generator = generator
        keys = train["user_index"].to_numpy() * n_items + train["item_index"].to_numpy()
        self.positive_keys = torch.as_tensor(np.unique(keys))

    def sample(self, users: torch.Tensor, n_per_user: int) -> torch.Tensor:
        """Items of shape (len(users), n_per_user), none of them a training positive."""
        users = users.repeat_interleave(n_per_user)
        items = torch.randint(self.n_items, users.shape, generator=self.generator)
        # Redraw the few that hit a positive; with sparse data this loop runs a handful of times.
        for _ in range(100):
            clash = torch.isin(users * self.n_items + items, self.positive_keys)
            if not clash.any():
                break
            items[clash] = torch.randint(
                self.n_items, (int(clash.sum()),), generator=self.generator
            )
        return items.view(-1, n_per_user)


def train(
    model: BilinearModel,
    train_data: pd.DataFrame,
    validation: pd.DataFrame,
    config: TrainConfig | None = None,
    device: torch.device | str | None = None,
    state_path: str | Path | None = None,
) -> TrainHistory:
    """Fit ``model`` in place and return its history; the best epoch's weights are kept.

    Parameters
    ----------
    model : BilinearModel
    train_data : pandas.DataFrame
        Training interactions (``user_index``, ``item_index``).
    validation : pandas.DataFrame
        Held-out interactions for early stopping; never the test set.
    config : TrainConfig, optional
    device : torch.device or str, optional
        Where to train; defaults to the device the model is on. On CUDA the
        forward pass runs in bfloat16 autocast.
    state_path : str or Path, optional
        A file for the training state (weights, optimizer, random generator,
        history), rewritten after every epoch. When it exists at the start,
        training resumes from it, so a run that was interrupted continues
        where it stopped and ends with the same weights as an uninterrupted
        one. It must come from the same model shape, data and settings
        (``epochs`` may grow): the settings and shape are checked, the data
        is not, so name the file after the data (as
        :func:`tailrec.course.train_or_load` does, deleting it once the
        finished model is saved).
    """
    config = config or TrainConfig()
    if len(train_data) == 0 or len(validation) == 0:
        raise ValueError(
            f"Training needs training and validation interactions; got {len(train_data)} and "
            f"{len(validation)}. Use a split that leaves both non-empty."
        )
    device = torch.device(device) if device is not None else model.W.device
    model.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    sampler = NegativeSampler(train_data, model.n_items, generator)
    users = torch.tensor(train_data["user_index"].to_numpy(), dtype=torch.long)
    items = torch.tensor(train_data["item_index"].to_numpy(), dtype=torch.long)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    autocast = torch.autocast(
        device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"
    )

    history = TrainHistory()
    stopping = EarlyStopping(model, history, config.patience)
    start = 0
    if state_path is not None and Path(state_path).exists():
        start = load_training_state(state_path, model, optimizer, generator, stopping, config)
        logger.info("Resuming training from %s after epoch %d", state_path, start)
    if history.stopped_early:
        start = config.epochs
    bar = tqdm(range(start, config.epochs), disable=not config.progress, desc="epochs")
    for epoch in bar:
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(users), generator=generator)
        total_loss = 0.0
        for start in range(0, len(order), config.batch_size):
            # Sample: a batch of positives and n_negatives unobserved items per positive.
            batch = order[start : start + config.batch_size]
            batch_users, batch_items = users[batch], items[batch]
            negatives = sampler.sample(batch_users, config.n_negatives)  # (B, n_neg)
            pair_users = torch.cat([batch_users, batch_users.repeat_interleave(config.n_negatives)])
            pair_items = torch.cat([batch_items, negatives.reshape(-1)])
            labels = torch.cat([torch.ones(len(batch)), torch.zeros(negatives.numel())])

            # Forward: logits z = u W iᵀ + b_i for every pair.
            with autocast:
                logits = model(pair_users.to(device), pair_items.to(device))

            # Loss: binary cross-entropy on the logits (numerically stable form).
            loss = F.binary_cross_entropy_with_logits(logits.float(), labels.to(device))
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"The training loss became {loss.item()} at epoch {epoch + 1}; "
                    "lower the learning rate (TrainConfig.lr)."
                )

            # Backward and step.
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)

        # Evaluate: rank the validation items, excluding what the user saw in training.
        per_user = evaluate_ranking(
            model_scorer(model), validation, [train_data], model.n_items, config.eval_k
        )
        ndcg = float(per_user["ndcg"].mean())
        history.train_loss.append(total_loss / len(users))
        history.seconds.append(time.perf_counter() - started)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}", val_ndcg=f"{ndcg:.4f}")
        logger.info(
            "epoch %d: loss %.4f, validation NDCG %.4f", epoch + 1, history.train_loss[-1], ndcg
        )
        should_stop = stopping.should_stop(epoch + 1, ndcg)
        if state_path is not None:
            save_training_state(
                state_path, epoch + 1, model, optimizer, generator, stopping, config
            )
        if should_stop:
            break
    bar.close()
    stopping.restore()
    return history


TRAINING_STATE_FORMAT = "tailrec-training-state"
# Settings that may differ between an interrupted run and its resumption.
RESUMABLE_CHANGES = ("epochs", "progress")


def _settings_key(config: Any) -> dict:
    """The settings a state must match: the config's fields (from ``to_dict``) but those
    that may change on resuming."""
    return {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}


def save_training_state(
    path: str | Path,
    epochs_done: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    stopping: EarlyStopping,
    config: Any,
) -> None:
    """Write everything needed to continue training after ``epochs_done`` epochs (atomically).

    ``config`` is the run's settings object (anything with ``to_dict()``).
    """
    payload = {
        "format": TRAINING_STATE_FORMAT,
        "settings": _settings_key(config),
        "epochs_done": epochs_done,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "history": stopping.history.to_dict(),
        "best_ndcg": stopping.best_ndcg,
        "best_state": stopping.best_state,
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))


def load_training_state(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    stopping: EarlyStopping,
    config: Any,
) -> int:
    """Restore a state written by :func:`save_training_state`; returns the epochs already done."""
    fix = f"delete {path} to start training from the beginning"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} is not a readable training state ({error}); {fix}.") from error
    if not isinstance(payload, dict) or payload.get("format") != TRAINING_STATE_FORMAT:
        raise ValueError(f"{path} is not a tailrec training state; {fix}.")
    if payload["settings"] != _settings_key(config):
        raise ValueError(f"{path} was written by a run with other training settings; {fix}.")
    try:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise ValueError(f"{path} belongs to a model of another shape; {fix}.") from error
    generator.set_state(payload["generator"])
    saved = payload["history"]
    for name, value in saved.items():
        setattr(stopping.history, name, value)
    stopping.best_ndcg, stopping.best_state = payload["best_ndcg"], payload["best_state"]
    return int(payload["epochs_done"])
