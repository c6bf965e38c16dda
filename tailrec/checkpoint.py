"""Save and load a trained model: tensors and plain values only.

A checkpoint is a ``torch.save`` file holding a dict of tensors, numbers and
strings, so :func:`load_checkpoint` can read it with ``weights_only=True``:
nothing in it is ever unpickled as code. The resolved settings are also
written beside it as JSON, for people to read.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch

from tailrec.files import atomic_write
from tailrec.model import BilinearModel, ModelConfig

CHECKPOINT_FORMAT = "tailrec-bilinear"
CHECKPOINT_VERSION = 1


def settings_path(path: str | Path) -> Path:
    """The JSON file of settings written beside checkpoint ``path``."""
    return Path(path).with_suffix(".json")


def save_checkpoint(
    model: BilinearModel, path: str | Path, settings: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` and the plain-valued ``settings`` to ``path`` (and its JSON twin).

    Both files are written to a temporary name first and then renamed, so an
    interrupted save never leaves a truncated checkpoint under the final name.
    """
    path = Path(path)
    if path.suffix == ".json":
        raise ValueError(
            f"{path} ends in .json, the name of the settings file written beside a checkpoint; "
            "choose another name, e.g. model.pt."
        )
    _refuse_foreign_settings_file(settings_path(path))
    settings = dict(settings or {})
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "n_users": model.n_users,
        "n_items": model.n_items,
        "model_config": model.config.to_dict(),
        "settings_json": json.dumps(settings, sort_keys=True),
        "state_dict": {name: t.detach().cpu() for name, t in model.state_dict().items()},
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))
    text = json.dumps(
        {"model_config": model.config.to_dict(), **settings}, indent=2, sort_keys=True
    )
    atomic_write(settings_path(path), lambda handle: handle.write(text.encode()))
    return path


def _refuse_foreign_settings_file(path: Path) -> None:
    """The settings twin may replace an earlier one of ours, never a file of the user's."""
    if not path.exists():
        return
    try:
        ours = "model_config" in json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, OSError, TypeError):
        ours = False
    if not ours:
        raise ValueError(
            f"Saving would overwrite {path}, which is not a tailrec settings file (the JSON "
            "written beside each checkpoint); choose another checkpoint name or move that file."
        )


def load_checkpoint(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[BilinearModel, dict[str, Any]]:
    """Rebuild the model saved at ``path``; returns ``(model, settings)``.

    Raises ``ValueError`` for a file that is not a tailrec checkpoint or was
    written by an incompatible version.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:
        # torch names the class a file asks for ("Unsupported global"); anything else is damage.
        if "Unsupported global" not in str(error):
            raise ValueError(
                f"{path} could not be read as a tailrec checkpoint: it is damaged or another kind "
                "of file. Train the model again to get a checkpoint."
            ) from error
        raise ValueError(
            f"{path} is not a tailrec checkpoint: loading it would need to run code stored in "
            "the file, which tailrec refuses. Train the model again to get a checkpoint."
        ) from error
    except Exception as error:
        raise ValueError(
            f"{path} could not be read as a tailrec checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]}). "
            "It may be truncated or another kind of file; train the model again to recreate it."
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not a tailrec checkpoint; pass a file written by save_checkpoint."
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} was written by checkpoint format version {payload.get('version')}, and this "
            f"tailrec reads version {CHECKPOINT_VERSION}; retrain the model with this version."
        )
    try:
        state = payload["state_dict"]
        model = BilinearModel(
            payload["n_users"],
            payload["n_items"],
            user_features=state.get("user_features"),
            item_features=state.get("item_features"),
            config=ModelConfig(**payload["model_config"]),
        )
        model.load_state_dict(state)
        settings = json.loads(payload["settings_json"])
    except (KeyError, TypeError, AttributeError, RuntimeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path} is a damaged tailrec checkpoint ({type(error).__name__}: {error}); "
            "train the model again to recreate it."
        ) from error
    return model.to(device).eval(), settings
