"""Where the course keeps downloaded files, and the switches every lesson reads (lesson 00).

The caches are the standard ones, so weights a learner already has are reused: ``TORCH_HOME``
(torchvision), ``HF_HOME`` (Hugging Face) and ``LABKIT_DATA`` (the course's datasets, default
``~/.cache/labkit``). The switches come from the environment, so every runner (JupyterLab,
nbval, papermill) passes them to the kernel alike: ``LABKIT_SMOKE_TEST`` (tiny sizes),
``LABKIT_OFFLINE`` (no downloads) and ``LABKIT_STANDIN`` (random weights, said by a banner).
"""

from __future__ import annotations

import os
from pathlib import Path

SMOKE_TEST_ENV = "LABKIT_SMOKE_TEST"
OFFLINE_ENV = "LABKIT_OFFLINE"
STANDIN_ENV = "LABKIT_STANDIN"


def env_flag(name: str) -> bool:
    """An on/off switch from the environment; anything unclear is an error, not a guess."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"The environment variable {name}={os.environ[name]!r} is not on or off. "
                     "Fix: set it to 1 (on) or 0 (off), or unset it.")


def _user_cache() -> str:
    return os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")


def torch_checkpoints_dir() -> Path:
    """Where torchvision keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_home() -> Path:
    return Path(os.environ.get("HF_HOME") or os.path.join(_user_cache(), "huggingface"))


def hf_hub_dir() -> Path:
    """Where Hugging Face keeps model repositories (read from the environment at each call)."""
    return Path(os.environ.get("HF_HUB_CACHE") or hf_home() / "hub")


def course_data_dir() -> Path:
    """Where the course's datasets go: ``$LABKIT_DATA`` (default ``~/.cache/labkit``)."""
    return Path(os.environ.get("LABKIT_DATA") or os.path.join(_user_cache(), "labkit"))


def shipped_data_dir() -> Path:
    """The repository's ``data/`` folder: small data that comes with the course itself."""
    folder = Path(__file__).resolve().parents[1] / "data"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"The course's data folder is missing (looked in {folder}): labkit has to be used "
            "from a clone of the course. Fix: clone it and run `make lab` there.")
    return folder


def cache_dirs() -> dict[str, Path]:
    """The folders the course downloads into, keyed by what goes there."""
    return {"torchvision weights (TORCH_HOME)": torch_checkpoints_dir().parent,
            "Hugging Face models (HF_HOME)": hf_home(),
            "course datasets (LABKIT_DATA)": course_data_dir()}
