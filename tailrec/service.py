"""tailrec's recommender on a practitioner's own logs: fit, save, load, recommend, evaluate.

This is what ``tailrec fit``, ``tailrec recommend`` and ``tailrec evaluate``
run. :func:`fit_on_logs` trains :mod:`tailrec.recommender`'s model on
interactions read by :mod:`tailrec.logs`, holding out each user's latest
10% (or a seeded random 10% without times) to choose its settings.
:class:`TrainedRecommender` keeps everything a recommendation needs, with the
original string ids, and saves it to a folder as plain tensors and strings
(nothing in it is unpickled as code when it is loaded).

Who gets what:

- a known user: the full model on their history;
- a new user with a few items (``history``) and/or a profile text: the same
  model, folded in from what they gave, with no retraining;
- a new user with neither: the most popular items, and the answer says so.

Size limits: EASE's item-item term is a dense (items x items) matrix, so it is
left out above :data:`MAX_ITEM_ITEM_ITEMS` items (the fit report says so);
the model scores the whole catalogue for a user at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tailrec import __version__
from tailrec.baselines import ease_item_weights, popularity_scorer
from tailrec.encoder import DEFAULT_ENCODER, TextEncoder
from tailrec.evaluation import Scorer, evaluate_ranking, tie_break_keys
from tailrec.files import atomic_write
from tailrec.history_model import HistoryBilinearModel, HistoryModelConfig
from tailrec.profile_prior import ProfilePrior
from tailrec.recommender import Parts, Weights, fit_tailrec_parts, placeholder_profiles
from tailrec.segments import segment_users

logger = logging.getLogger(__name__)

MAX_ITEM_ITEM_ITEMS = 20_000
VALIDATION_FRACTION = 0.1
DESCRIPTION_TEMPERATURE = 0.05
MODEL_FILE = "model.pt"
REPORT_FILE = "fit_report.txt"
SETTINGS_FILE = "settings.json"
SAVE_FORMAT = "tailrec-recommender"
SAVE_VERSION = 1


@dataclass
class OwnData:
    """Interactions with contiguous indices, and the ids and texts behind them.

    ``interactions`` has ``user_index`` and ``item_index`` (0-based) beside the
    ``user_id`` and ``item_id`` strings (and ``rating``, ``timestamp`` when
    read). ``user_ids[i]`` is the id of user index ``i``, likewise for items.
    ``profile_texts`` is None when no user table was given.
    """

    interactions: pd.DataFrame
    user_ids: list[str]
    item_ids: list[str]
    item_texts: list[str]
    profile_texts: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    item_texts_given: bool = True


def index_logs(
    interactions: pd.DataFrame,
    item_texts: pd.Series | None = None,
    user_texts: pd.Series | None = None,
) -> OwnData:
    """Number users and items in order of first appearance, and attach their texts.

    Parameters
    ----------
    interactions : pandas.DataFrame
        ``user_id`` and ``item_id`` strings, as :func:`tailrec.logs.read_interactions` returns.
    item_texts, user_texts : pandas.Series, optional
        Text per id (index: id string), from :func:`tailrec.logs.read_attribute_table`.
        Without item texts an item is described by its id alone.
    """
    if len(interactions) == 0:
        raise ValueError("No interactions are left to train on; see the report for why.")
    user_index, user_ids = pd.factorize(interactions["user_id"], sort=False)
    item_index, item_ids = pd.factorize(interactions["item_id"], sort=False)
    frame = interactions.assign(user_index=user_index, item_index=item_index)
    notes = []
    if item_texts is None:
        texts = [f"item {i}" for i in item_ids]
        notes.append("no item table: items are known by their interactions only (no text)")
    else:
        _require_overlap(item_texts.index, item_ids, "item")
        texts = item_texts.reindex(item_ids).fillna("").tolist()
        lacking = int((item_texts.reindex(item_ids).isna()).sum())
        if lacking:
            notes.append(f"{lacking} item(s) with interactions are not in the item table (no text)")
        unused = len(set(item_texts.index) - set(item_ids))
        if unused:
            notes.append(
                f"{unused} item(s) of the item table have no interactions and are not "
                "recommended: this model ranks items it has seen interactions with"
            )
    user_ids = list(user_ids)
    profiles = None
    if user_texts is not None:
        _require_overlap(user_texts.index, user_ids, "user")
        lacking = int(user_texts.reindex(user_ids).isna().sum())
        if lacking:
            notes.append(f"{lacking} user(s) are not in the user table (empty profile)")
        # Users with a profile and no interactions yet are the cold start the prior serves.
        known = set(user_ids)
        waiting = [u for u in user_texts.index if u not in known]
        if waiting:
            notes.append(
                f"{len(waiting)} user(s) of the user table have no interactions yet; they are "
                "served from their profile"
            )
        user_ids += waiting
        profiles = user_texts.reindex(user_ids).fillna("").tolist()
    return OwnData(frame, user_ids, list(item_ids), texts, profiles, notes, item_texts is not None)


def _require_overlap(table_ids: pd.Index, log_ids, what: str) -> None:
    """A table that shares no id with the logs is keyed by the wrong column: refuse it."""
    if len(table_ids) and not table_ids.isin(list(log_ids)).any():
        examples = ", ".join(map(repr, list(table_ids[:3])))
        raise ValueError(
            f"None of the {len(table_ids)} ids of the {what} table (e.g. {examples}) occurs in the "
            f"interactions; name the table's id column with --{what}-id-col."
        )


def validation_mask(interactions: pd.DataFrame, seed: int) -> np.ndarray:
    """Each user's latest 10% of interactions, at least one (seeded random order without times).

    A user with a single interaction keeps it for training.
    """
    order = np.random.default_rng(seed).random(len(interactions))
    if "timestamp" in interactions:
        order = interactions["timestamp"].to_numpy(dtype=np.float64) + order  # order breaks ties
    keyed = pd.DataFrame({"user": interactions["user_index"].to_numpy(), "order": order})
    from_last = keyed.groupby("user")["order"].rank(method="first", ascending=False).to_numpy()
    size = keyed.groupby("user")["order"].transform("size").to_numpy()
    # Round half up, as tailrec.splits does; a user with 2 or more gives at least one.
    held = np.maximum(np.floor(VALIDATION_FRACTION * size + 0.5), 1) * (size >= 2)
    return from_last <= held


def fit_on_logs(
    data: OwnData,
    encoder: str = DEFAULT_ENCODER,
    config: HistoryModelConfig | None = None,
    device: torch.device | str = "cpu",
    reading: dict | None = None,
    state_dir: str | Path | None = None,
) -> TrainedRecommender:
    """Encode the texts, fit the recommender and return it ready to serve.

    ``reading`` (how the interaction file was read: columns, separator,
    encoding) is stored with the model. With ``state_dir`` the trainings
    write their state under it, in a folder named after the data and
    settings, and an interrupted fit of the same data resumes from it.
    """
    config = config or HistoryModelConfig()
    n_items = len(data.item_ids)
    if n_items < 2:
        raise ValueError(f"The logs hold {n_items} item; a recommender needs at least 2.")
    config = replace(config, eval_k=min(config.eval_k, n_items))
    held = validation_mask(data.interactions, config.seed)
    if not held.any():
        raise ValueError(
            "No user has 2 or more interactions, so nothing can be held out to choose the "
            "model's settings; a recommender needs users who interacted more than once."
        )
    text_encoder = TextEncoder(encoder)
    item_features = text_encoder.encode(data.item_texts)
    profiles = None if data.profile_texts is None else text_encoder.encode(data.profile_texts)
    item_item = n_items <= MAX_ITEM_ITEM_ITEMS
    notes = list(data.notes)
    if not item_item:
        notes.append(
            f"{n_items} items: the item-item term is left out (over {MAX_ITEM_ITEM_ITEMS})"
        )
    columns = ["user_index", "item_index"] + (
        ["timestamp"] if "timestamp" in data.interactions else []
    )
    train, validation = data.interactions[~held][columns], data.interactions[held][columns]
    if state_dir is not None:
        state_dir = Path(state_dir) / _data_key(data, config)
    fit = fit_tailrec_parts(
        train, validation, item_features, profiles, config, device, item_item, state_dir
    )
    parts, weights = fit.chosen(item_item=item_item, profile_prior=profiles is not None)
    if parts.prior is not None and parts.prior.k >= len(parts.prior.neighbours):
        notes.append(
            "the profile prior chose every user as a neighbour, so a profile does not change "
            "anyone's list: on these logs profiles did not predict choices"
        )
    info = {**fit.info, **asdict(weights), "notes": notes, "item_text": data.item_texts_given}
    return TrainedRecommender(
        config=config,
        model=parts.model,
        profiles=profiles,
        interactions=data.interactions[["user_index", "item_index"]].reset_index(drop=True),
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        item_texts=data.item_texts,
        weights=weights,
        ease_l2=fit.info["ease_l2"],
        prior_settings=None if parts.prior is None else (parts.prior.k, parts.prior.mix),
        encoder=encoder,
        reading=reading or {},
        info=info,
    )


def _data_key(data: OwnData, config: HistoryModelConfig) -> str:
    """A digest of what a fit learns from, so a saved training state is only resumed for it."""
    digest = hashlib.sha256()
    digest.update(data.interactions[["user_index", "item_index"]].to_numpy().tobytes())
    for texts in (data.item_texts, data.profile_texts or []):
        digest.update("\x00".join(texts).encode("utf-8", "replace"))
    digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


@dataclass
class Recommendation:
    """A list for one user: the ids, their scores, and on what basis they were chosen."""

    user_id: str | None
    basis: str
    items: list[dict]

    def to_dict(self) -> dict:
        return {"user_id": self.user_id, "basis": self.basis, "items": self.items}


@dataclass
class TrainedRecommender:
    """Everything needed to recommend: the trained parts, the history, the ids and texts."""

    config: HistoryModelConfig
    model: HistoryBilinearModel
    profiles: np.ndarray | None
    interactions: pd.DataFrame
    user_ids: list[str]
    item_ids: list[str]
    item_texts: list[str]
    weights: Weights
    ease_l2: float | None
    prior_settings: tuple[int, float] | None
    encoder: str = DEFAULT_ENCODER
    reading: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._user_position = {user: i for i, user in enumerate(self.user_ids)}
        self._item_position = {item: i for i, item in enumerate(self.item_ids)}
        n_items = len(self.item_ids)
        item_item = None
        if self.ease_l2 is not None and self.weights.item_item != 0:
            item_item = ease_item_weights(self.interactions, n_items, self.ease_l2)
        prior = None
        if self.profiles is not None and self.prior_settings is not None:
            k, mix = self.prior_settings
            prior = ProfilePrior.fit(self.profiles, self.interactions, n_items, k=k, mix=mix)
        self.parts = Parts(self.model.cpu().eval(), item_item, prior)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def _profile_rows(self) -> np.ndarray:
        if self.profiles is not None:
            return self.profiles
        return placeholder_profiles(self.n_users, self.model.item_features.shape[1])

    def _counts(self) -> np.ndarray:
        return np.bincount(self.interactions["item_index"], minlength=len(self.item_ids))

    def user_position(self, user_id: str) -> int:
        """The index of ``user_id`` (spaces around it ignored, as when reading the logs)."""
        user_id = user_id.strip()
        if user_id not in self._user_position:
            near = [u for u in self.user_ids if u.lstrip("0") == user_id.lstrip("0")][:3]
            hint = ""
            if near:
                hint = f" (ids are exact strings: did you mean {' or '.join(map(repr, near))}?)"
            raise ValueError(
                f"Unknown user {user_id!r}{hint}. To serve someone the model has not seen, pass "
                "--profile TEXT and/or --history ITEM_ID... instead of --user."
            )
        return self._user_position[user_id]

    def item_positions(self, item_ids: Sequence[str]) -> list[int]:
        """The indices of ``item_ids``; a clear error naming any the model has not seen."""
        item_ids = [i.strip() for i in item_ids]
        unknown = [i for i in item_ids if i not in self._item_position]
        if unknown:
            shown = ", ".join(map(repr, unknown[:5]))
            raise ValueError(
                f"Unknown item id(s) {shown}: the model has seen no interactions with them. "
                "Ids are exact strings; check them against the items in the training file."
            )
        return [self._item_position[i] for i in item_ids]

    def _ranked(self, scores: np.ndarray, user: int, k: int, seen: set[int]) -> list[dict]:
        if seen and len(seen) >= len(self.item_ids):
            raise ValueError(
                "This user has already interacted with every item, so nothing unseen is left to "
                "recommend; leave out --exclude-seen to rank the items they have."
            )
        require_k(k, len(self.item_ids) - len(seen))
        scores = scores.astype(np.float64).copy()
        scores[list(seen)] = -np.inf
        items = np.arange(len(scores))
        keys = tie_break_keys(np.full(len(items), user), items)
        order = np.lexsort((keys, -scores))[:k]
        return [
            {
                "item_id": self.item_ids[i],
                "score": round(float(scores[i]), 6),
                "text": self.item_texts[i],
            }
            for i in order
        ]

    def recommend(self, user_id: str, k: int = 10, exclude_seen: bool = False) -> Recommendation:
        """The top ``k`` items for a known user, from their whole history."""
        user = self.user_position(user_id)
        scores = self._scorer()(np.array([user]))[0]
        mine = self.interactions["item_index"][self.interactions["user_index"] == user]
        seen = set(mine.tolist()) if exclude_seen else set()
        basis = (
            f"history of {len(mine)} interaction(s)" if len(mine) else "a profile, no history yet"
        )
        return Recommendation(self.user_ids[user], basis, self._ranked(scores, user, k, seen))

    def recommend_new(
        self,
        profile: str | None = None,
        history: Sequence[str] = (),
        k: int = 10,
        encoder: TextEncoder | None = None,
        description: str | None = None,
    ) -> Recommendation:
        """The top ``k`` items for someone the model has not seen, from what they give.

        ``profile`` is a text like the user table's (e.g. "age: 34. occupation:
        nurse"); ``history`` the ids of items they already chose, which are
        not recommended back; ``description`` free text about their tastes
        (e.g. "loves science fiction"), matched against the item texts
        (:meth:`description_scores`). With none of them, the most popular items.
        """
        items = list(dict.fromkeys(self.item_positions(list(history))))  # repeats count once
        if len(items) >= len(self.item_ids):
            raise ValueError("The history given holds every item, so nothing is left to recommend.")
        for name, text in (("profile", profile), ("description", description)):
            if text is not None and not text.strip():
                raise ValueError(f"The {name} text is empty; pass some text, or leave it out.")
        if profile is not None and self.parts.prior is None:
            raise ValueError(
                "This model was fitted without a user table, so it has no profiles to compare a "
                "new profile with. Refit with --users FILE, or pass --history ITEM_ID... instead."
            )
        encoder = encoder or (TextEncoder(self.encoder) if profile or description else None)
        if profile is None and not items:
            counts = self._counts().astype(np.float64)
            scores = np.log((counts + 1) / (counts + 1).sum())  # popularity as a log-share
            basis = ["popularity (no history or profile was given)"]
        else:
            scorer = self._new_user_scorer(profile, items, encoder)
            scores = scorer(np.array([self.n_users]))[0]
            basis = [f"{len(items)} item(s) of history"] if items else []
            if profile is not None:
                basis.append("a profile" + self._profile_caveat())
        if description is not None:
            scores = scores + self.description_scores(description, encoder)
            basis.append("a description")
        ranked = self._ranked(scores, self.n_users, k, set(items))
        return Recommendation(None, " and ".join(basis), ranked)

    def _profile_caveat(self) -> str:
        """A note for answers built on a profile when the fitted prior ignores profiles."""
        prior = self.parts.prior
        if prior is not None and prior.k >= len(prior.neighbours):
            return " (which changes nothing: see the fit notes)"
        return ""

    def description_scores(self, description: str, encoder: TextEncoder) -> np.ndarray:
        """log p(item | description): a softmax of the description's cosine with each item text.

        The temperature :data:`DESCRIPTION_TEMPERATURE` sets how far a
        description moves a list; it is a fixed choice, not fitted, since the
        data this was built on has no free-text descriptions to fit it on.
        """
        if not self.info.get("item_text", True):
            raise ValueError(
                "This model was fitted without an item table, so its items have no text to "
                "match a description against; refit with --items FILE --item-text-cols ..."
            )
        query = torch.as_tensor(encoder.encode([description])[0])
        features = torch.nn.functional.normalize(self.model.item_features, dim=-1)
        cosine = features @ torch.nn.functional.normalize(query, dim=0)
        return torch.log_softmax(cosine / DESCRIPTION_TEMPERATURE, dim=0).numpy()

    def _new_user_scorer(
        self, profile: str | None, items: list[int], encoder: TextEncoder | None
    ) -> Scorer:
        """The model's scorer with one more user (index ``n_users``) made of what was given."""
        rows = self._profile_rows()
        width = rows.shape[1]
        if profile is not None:
            vector = encoder.encode([profile])[0]
        else:
            vector = placeholder_profiles(1, width)[0]
        profiles = torch.as_tensor(np.vstack([rows, vector[None, :]]), dtype=torch.float32)
        new_rows = pd.DataFrame({"user_index": self.n_users, "item_index": items}, dtype="int64")
        history = pd.concat([self.interactions, new_rows], ignore_index=True)
        parts = self.parts
        if parts.prior is not None:
            unit = vector / np.linalg.norm(vector)
            prior = replace(parts.prior, profiles=np.vstack([parts.prior.profiles, unit[None, :]]))
            if profile is None:  # no profile to find neighbours by: the overall shares
                prior = replace(prior, mix=0.0)
            parts = replace(parts, prior=prior)
        return parts.scorer(history, profiles, self.weights)

    def evaluate(self, test: pd.DataFrame, k: int = 10) -> tuple[pd.DataFrame, list[str]]:
        """Ranking metrics at ``k`` on held-out ``test`` interactions, beside popularity's.

        Known users are ranked from their history (seen items excluded) and
        labelled as :meth:`segments` says; users the model has never seen
        get the popularity list and the label "new". Rows
        with unknown items, or pairs already in training, cannot be hit and
        are left out; the notes say how many.

        Returns
        -------
        (pandas.DataFrame, list of str)
            One row per segment ("all" first): ``users``, the model's mean
            ``ndcg``, ``recall``, ``precision``, ``map`` and ``hit_rate``, and
            ``popularity_ndcg`` and ``popularity_recall`` for the same users.
        """
        require_k(k)
        known, new, notes = self._test_rows(test)
        if k > len(self.item_ids):
            notes.append(
                f"k = {k} is more than the {len(self.item_ids)} items: lists hold them all"
            )
            k = len(self.item_ids)
        n_items = len(self.item_ids)
        popular = popularity_scorer(self.interactions, n_items)
        runs = []
        if len(known):
            segments = self.segments()
            for model, scorer in (("tailrec", self._scorer()), ("popularity", popular)):
                per_user = evaluate_ranking(scorer, known, [self.interactions], n_items, k)
                segment = segments.loc[per_user["user_index"]].to_numpy()
                runs.append(per_user.assign(model=model, segment=segment))
        if len(new):
            per_user = evaluate_ranking(popular, new, [], n_items, k)
            runs += [per_user.assign(model=m, segment="new") for m in ("tailrec", "popularity")]
        if not runs:
            raise ValueError("No test row can be scored; see the notes: " + "; ".join(notes))
        return _segment_table(pd.concat(runs, ignore_index=True)), notes

    def _test_rows(self, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
        """Test rows as indices: known users' rows, new users' rows (numbered on), and notes."""
        notes = []
        known_item = test["item_id"].isin(self._item_position)
        if (~known_item).any():
            notes.append(
                f"{int((~known_item).sum())} row(s) left out: items the model has not seen"
            )
        test = test[known_item]
        is_new = (~test["user_id"].isin(self._user_position)).to_numpy()
        frame = pd.DataFrame(
            {
                "user_index": test["user_id"].map(self._user_position).fillna(-1).astype("int64"),
                "item_index": test["item_id"].map(self._item_position).astype("int64"),
            }
        )
        seen = frame.merge(self.interactions.assign(_seen=True), how="left")["_seen"].eq(True)
        in_train = seen.to_numpy() & ~is_new
        if in_train.any():
            notes.append(f"{int(in_train.sum())} row(s) left out: already in the training history")
        new = frame[is_new].assign(
            user_index=pd.factorize(test["user_id"][is_new])[0] + self.n_users
        )
        if len(new):
            notes.append(f"{new['user_index'].nunique()} new user(s) got the popularity list")
        return frame[~is_new & ~in_train], new.drop_duplicates(), notes

    def segments(self) -> pd.Series:
        """Each user's segment: head, torso or tail by activity, or "profile only" with none.

        The quantiles are those of users with interactions; users known only
        by their profile would otherwise pull the tail's threshold to zero.
        """
        active = np.unique(self.interactions["user_index"])
        local = self.interactions.assign(
            user_index=np.searchsorted(active, self.interactions["user_index"])
        )
        labels = pd.Series("profile only", index=pd.RangeIndex(self.n_users), dtype=object)
        labels[active] = segment_users(local, len(active)).to_numpy()
        return labels

    def history_recommender(self, user_steps: int = 0) -> Callable[[pd.DataFrame], Scorer]:
        """The model as a function of a history (user and item indices), for the feedback loop.

        ``build(history)`` scores every user from ``history`` with the trained
        parts and the chosen weights; nothing is retrained. See
        :func:`tailrec.feedback.simulate_feedback`.
        """
        profiles = torch.as_tensor(self._profile_rows())
        return lambda history: self.parts.scorer(history, profiles, self.weights, user_steps)

    def indexed(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows of ``frame`` (``user_id``, ``item_id``, ...) whose user and item the model knows,
        with ``user_index`` and ``item_index`` added; the other rows are left out."""
        known = frame["user_id"].isin(self._user_position) & frame["item_id"].isin(
            self._item_position
        )
        frame = frame[known]
        return frame.assign(
            user_index=frame["user_id"].map(self._user_position).astype("int64"),
            item_index=frame["item_id"].map(self._item_position).astype("int64"),
        )

    def _scorer(self) -> Scorer:
        profiles = torch.as_tensor(self._profile_rows())
        return self.parts.scorer(self.interactions, profiles, self.weights)

    def save(self, folder: str | Path) -> Path:
        """Write the model to ``folder``/model.pt, with a readable report and settings beside it."""
        folder = Path(folder)
        payload = {
            "format": SAVE_FORMAT,
            "version": SAVE_VERSION,
            "tailrec_version": __version__,
            "config": self.config.to_dict(),
            "state_dict": {n: t.detach().cpu() for n, t in self.model.state_dict().items()},
            "profiles": None if self.profiles is None else torch.as_tensor(self.profiles),
            "user_index": torch.tensor(self.interactions["user_index"].to_numpy()),
            "item_index": torch.tensor(self.interactions["item_index"].to_numpy()),
            "user_ids": list(self.user_ids),
            "item_ids": list(self.item_ids),
            "item_texts": list(self.item_texts),
            "weights": asdict(self.weights),
            "ease_l2": self.ease_l2,
            "prior_settings": None if self.prior_settings is None else list(self.prior_settings),
            "encoder": self.encoder,
            "settings_json": json.dumps({"reading": self.reading, "info": self.info}),
        }
        atomic_write(folder / MODEL_FILE, lambda handle: torch.save(payload, handle))
        settings = {
            "tailrec_version": __version__,
            "encoder": self.encoder,
            "users": self.n_users,
            "items": len(self.item_ids),
            "interactions": len(self.interactions),
            "model_config": self.config.to_dict(),
            "reading": self.reading,
            "chosen": self.info,
        }
        text = json.dumps(settings, indent=2, sort_keys=True, default=str)
        atomic_write(folder / SETTINGS_FILE, lambda handle: handle.write(text.encode()))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TrainedRecommender:
        """Read a model saved by :meth:`save`; clear errors for anything else."""
        folder = Path(folder)
        path = folder if folder.name == MODEL_FILE and folder.is_file() else folder / MODEL_FILE
        if not path.is_file():
            raise ValueError(
                f"{folder} holds no {MODEL_FILE}; pass the folder that tailrec fit --out wrote."
            )
        payload = _read_payload(path)
        try:
            config = HistoryModelConfig(**payload["config"])
            state = payload["state_dict"]
            profiles = payload["profiles"]
            n_users = len(payload["user_ids"])
            rows = (
                profiles
                if profiles is not None
                else placeholder_profiles(n_users, state["item_features"].shape[1])
            )
            model = HistoryBilinearModel(state["item_features"], torch.as_tensor(rows), config)
            model.load_state_dict(state)
            settings = json.loads(payload["settings_json"])
            prior_settings = payload["prior_settings"]
            return cls(
                config=config,
                model=model.eval(),
                profiles=None if profiles is None else profiles.numpy(),
                interactions=pd.DataFrame(
                    {
                        "user_index": payload["user_index"].numpy(),
                        "item_index": payload["item_index"].numpy(),
                    }
                ),
                user_ids=list(payload["user_ids"]),
                item_ids=list(payload["item_ids"]),
                item_texts=list(payload["item_texts"]),
                weights=Weights(**payload["weights"]),
                ease_l2=payload["ease_l2"],
                prior_settings=None if prior_settings is None else tuple(prior_settings),
                encoder=payload["encoder"],
                reading=settings["reading"],
                info=settings["info"],
            )
        except (KeyError, TypeError, AttributeError, RuntimeError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{path} is a damaged tailrec model ({type(error).__name__}: {error}); "
                "fit the model again to recreate it."
            ) from error


SEGMENT_ORDER = ("all", "head", "torso", "tail", "profile only", "new")
TABLE_METRICS = ("ndcg", "recall", "precision", "map", "hit_rate")


def _segment_table(per_user: pd.DataFrame) -> pd.DataFrame:
    """Per-segment means of the model's metrics and of popularity's NDCG and recall."""
    per_user = pd.concat([per_user, per_user.assign(segment="all")])
    means = per_user.groupby(["segment", "model"])[list(TABLE_METRICS)].mean()
    model = means.xs("tailrec", level="model")
    popularity = means.xs("popularity", level="model")
    users = per_user[per_user["model"] == "tailrec"].groupby("segment").size()
    table = model.assign(popularity_ndcg=popularity["ndcg"], popularity_recall=popularity["recall"])
    table.insert(0, "users", users)
    return table.loc[[s for s in SEGMENT_ORDER if s in table.index]]


def _read_payload(path: Path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} is not a tailrec model, or is damaged; tailrec never runs code stored in a "
            "file. Fit the model again with tailrec fit."
        ) from error
    except Exception as error:
        raise ValueError(
            f"{path} could not be read as a tailrec model ({type(error).__name__}); it may be "
            "truncated. Fit the model again with tailrec fit."
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != SAVE_FORMAT:
        raise ValueError(f"{path} is not a tailrec model; pass a folder written by tailrec fit.")
    if payload.get("version") != SAVE_VERSION:
        raise ValueError(
            f"{path} was written in model format version {payload.get('version')}; this tailrec "
            f"reads version {SAVE_VERSION}. Fit the model again with this version."
        )
    return payload


def require_k(k: int, available: int | None = None) -> None:
    """``k`` must be a whole number from 1 to the number of items that can be recommended
    (``available``; None checks only that it is a whole number of at least 1)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a whole number of at least 1, got {k!r}.")
    if available is not None and k > available:
        raise ValueError(
            f"k = {k} is more than the {available} item(s) that can be recommended here; "
            f"ask for at most {available}."
        )
