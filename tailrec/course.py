"""The pipeline the notebooks share: data, split, segments, text features, model.

Every notebook starts from the same :class:`CourseSettings` (its parameters
cell), calls :func:`prepare`, and gets the same split and features for the
same seed. :func:`train_or_load` lets later notebooks reuse the model that
``04_training`` saved, and retrains when the settings differ.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tailrec.checkpoint import load_checkpoint, save_checkpoint
from tailrec.checks import require_whole_number
from tailrec.data import InteractionData, load_movielens, subsample_users
from tailrec.device import best_device
from tailrec.encoder import DEFAULT_ENCODER, TextEncoder
from tailrec.model import BilinearModel, ModelConfig
from tailrec.segments import segment_users
from tailrec.splits import SPLIT_NAMES, Split, make_split
from tailrec.text import item_texts, user_texts
from tailrec.training import TrainConfig, TrainHistory, train

logger = logging.getLogger(__name__)

SMALL_N_USERS = 150
SMALL_MAX_EPOCHS = 4


@dataclass
class CourseSettings:
    """Everything that determines a course run's numbers.

    ``small`` keeps ``SMALL_N_USERS`` random users and at most
    ``SMALL_MAX_EPOCHS`` epochs, for a run of a minute or two.
    """

    data_dir: str | None = None
    seed: int = 42
    epochs: int = 30
    small: bool = False
    split: str = "temporal"
    encoder: str = DEFAULT_ENCODER
    dim: int = 64
    use_text: bool = True
    max_titles: int = 30
    k: int = 10

    def __post_init__(self) -> None:
        require_whole_number("seed", self.seed, minimum=0)
        for name in ("epochs", "dim", "max_titles", "k"):
            require_whole_number(name, getattr(self, name), minimum=1)
        for name in ("small", "use_text"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if self.data_dir is not None and not (isinstance(self.data_dir, str) and self.data_dir):
            raise ValueError(
                f"data_dir must be None or the path of a folder, got {self.data_dir!r}."
            )
        if self.split not in SPLIT_NAMES:
            raise ValueError(
                f"Unknown split {self.split!r}; choose one of {', '.join(SPLIT_NAMES)}."
            )

    def resolved(self) -> CourseSettings:
        """The settings actually used, with small mode applied."""
        if self.small:
            return replace(self, epochs=min(self.epochs, SMALL_MAX_EPOCHS))
        return self

    def model_config(self) -> ModelConfig:
        return ModelConfig(dim=self.dim, use_text=self.use_text)

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, seed=self.seed, eval_k=self.k, progress=False)

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change the trained model (the data folder does not)."""
        values = asdict(self.resolved())
        values.pop("data_dir")
        return values


@dataclass
class CourseData:
    """What :func:`prepare` builds: data, split, segments and text features.

    ``item_features`` and ``user_features`` are float32 arrays of shape
    (n_items, F) and (n_users, F); user texts use training interactions only.
    """

    data: InteractionData
    split: Split
    segments: pd.Series
    item_texts: list[str]
    user_texts: list[str]
    item_features: np.ndarray
    user_features: np.ndarray


def load_split(settings: CourseSettings) -> tuple[InteractionData, Split, pd.Series]:
    """Load the data (a subsample in small mode), split it and label user segments."""
    settings = settings.resolved()
    data = load_movielens(settings.data_dir)
    if settings.small:
        data = subsample_users(data, SMALL_N_USERS, settings.seed)
    split = make_split(settings.split, data.interactions, seed=settings.seed)
    return data, split, segment_users(split.train, data.n_users)


def prepare(settings: CourseSettings, encoder: TextEncoder | None = None) -> CourseData:
    """Load and split the data, label segments and encode the texts."""
    settings = settings.resolved()
    data, split, _ = load_split(settings)
    encoder = encoder or TextEncoder(settings.encoder)
    return encode_split(data, split, encoder, settings.max_titles)


def encode_split(
    data: InteractionData, split: Split, encoder: TextEncoder, max_titles: int = 30
) -> CourseData:
    """Segments and text features for one split: user texts see only its training part."""
    items_text = item_texts(data.items)
    users_text = user_texts(data.users, data.items, split.train, max_titles=max_titles)
    return CourseData(
        data=data,
        split=split,
        segments=segment_users(split.train, data.n_users),
        item_texts=items_text,
        user_texts=users_text,
        item_features=encoder.encode(items_text),
        user_features=encoder.encode(users_text),
    )


def build_model(course: CourseData, settings: CourseSettings) -> BilinearModel:
    """A freshly initialised model for ``course``, seeded by ``settings.seed``."""
    generator = torch.Generator().manual_seed(settings.seed)
    return BilinearModel(
        course.data.n_users,
        course.data.n_items,
        user_features=torch.from_numpy(course.user_features),
        item_features=torch.from_numpy(course.item_features),
        config=settings.model_config(),
        generator=generator,
    )


def fit(
    course: CourseData, settings: CourseSettings, state_path: str | Path | None = None
) -> tuple[BilinearModel, TrainHistory]:
    """Build and train a model on the course's training split.

    ``state_path``: see :func:`tailrec.training.train` (resuming an interrupted run).
    """
    settings = settings.resolved()
    model = build_model(course, settings)
    split, config = course.split, settings.train_config()
    history = train(model, split.train, split.validation, config, best_device(), state_path)
    return model.cpu().eval(), history


def course_fingerprint(course: CourseData, settings: CourseSettings) -> dict[str, Any]:
    """Settings plus a digest of the data and text features a model was trained on."""
    digest = hashlib.sha256()
    for part in (course.user_features, course.item_features):
        digest.update(np.ascontiguousarray(part).tobytes())
    for frame in (course.split.train, course.split.validation):
        digest.update(frame[["user_index", "item_index"]].to_numpy().tobytes())
    return {**settings.fingerprint(), "inputs_sha256": digest.hexdigest()}


def save_course_model(
    model: BilinearModel,
    history: TrainHistory,
    course: CourseData,
    settings: CourseSettings,
    path: str | Path,
) -> Path:
    """Save a course model with the fingerprint of its inputs and its training history."""
    fingerprint = course_fingerprint(course, settings)
    return save_checkpoint(model, path, {"course": fingerprint, "history": history.to_dict()})


def train_or_load(
    course: CourseData, settings: CourseSettings, path: str | Path
) -> tuple[BilinearModel, TrainHistory]:
    """Load the checkpoint at ``path`` if it was trained with the same settings, else train.

    A checkpoint trained with other settings is not overwritten silently: the
    new model is trained and saved in its place only after a log message says so.
    Training writes its state beside ``path`` after every epoch (named after the
    settings and data), so a run interrupted mid-training resumes where it
    stopped; the state file is deleted once the finished model is saved.
    """
    path = Path(path)
    fingerprint = course_fingerprint(course, settings)
    if path.is_file():
        model, saved = load_checkpoint(path)
        if saved.get("course") == json.loads(json.dumps(fingerprint)):
            logger.info("Reusing the model saved at %s", path)
            return model, TrainHistory(**saved["history"])
        warnings.warn(
            f"The model at {path} was trained with other settings or data; training a new one, "
            "which replaces it.",
            stacklevel=2,
        )
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:12]
    state_path = path.with_name(f"{path.stem}.training-{key}.pt")
    model, history = fit(course, settings, state_path)
    save_course_model(model, history, course, settings, path)
    state_path.unlink(missing_ok=True)
    return model, history


def write_figures(figures: dict[str, Any], path: str | Path) -> Path:
    """Write a notebook's key figures as JSON (numbers rounded to 6 decimals)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, (np.integer,)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            return round(float(value), 6)
        return value

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plain(figures), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
