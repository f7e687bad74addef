"""Where the course keeps downloaded files, and the two switches every lesson reads.

The course reuses the standard caches, so weights a learner already has are found:

- torchvision weights: ``TORCH_HOME`` (default ``~/.cache/torch``), in its ``hub`` folder;
- Hugging Face checkpoints: ``HF_HOME`` (default ``~/.cache/huggingface``);
- datasets the course downloads: ``LABKIT_DATA`` (default ``~/.cache/labkit``).

Switches, read from the environment so that every runner (JupyterLab, nbval, papermill)
passes them to the kernel the same way:

- ``LABKIT_SMOKE_TEST=1``: lessons run at tiny sizes, in seconds (what CI runs);
- ``LABKIT_OFFLINE=1``: nothing is downloaded; lessons use what is cached or say what is missing;
- ``LABKIT_STANDIN=1``: models are built with random weights instead of pre-trained ones, so a
  lesson runs with nothing downloaded. A banner says so: predictions and accuracies are then
  meaningless. This is what CI runs; it is never switched on behind a learner's back.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SMOKE_TEST_ENV", "OFFLINE_ENV", "STANDIN_ENV", "env_flag", "cache_dirs",
           "torch_checkpoints_dir", "hf_hub_dir", "course_data_dir", "shipped_data_dir"]

SMOKE_TEST_ENV = "LABKIT_SMOKE_TEST"
OFFLINE_ENV = "LABKIT_OFFLINE"
STANDIN_ENV = "LABKIT_STANDIN"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def env_flag(name: str) -> bool:
    """Read an on/off switch from the environment; anything unclear is an error, not a guess."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"The environment variable {name}={os.environ[name]!r} is not on or off. "
        f"Fix: set it to 1 (on) or 0 (off), or unset it."
    )


def _user_cache() -> str:
    return os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))


def torch_checkpoints_dir() -> Path:
    """Where torchvision keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    import torch.hub  # late: reading a path should not cost a torch import for the CLI help

    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_home() -> Path:
    return Path(os.environ.get("HF_HOME") or os.path.join(_user_cache(), "huggingface"))


def hf_hub_dir() -> Path:
    """Where Hugging Face keeps model repositories (read from the environment at each call)."""
    return Path(os.environ.get("HF_HUB_CACHE") or hf_home() / "hub")


def course_data_dir() -> Path:
    """Where the course's downloaded datasets go: ``$LABKIT_DATA`` (default ``~/.cache/labkit``)."""
    return Path(os.environ.get("LABKIT_DATA") or os.path.join(_user_cache(), "labkit"))


def shipped_data_dir() -> Path:
    """The repository's ``data/`` folder: small data that comes with the course itself."""
    folder = Path(__file__).resolve().parents[1] / "data"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"The course's data folder is missing (looked in {folder}). labkit has to be used "
            "from a clone of the course. Fix: clone it and run `make lab` (or pip install -e .) there.")
    return folder


def cache_dirs() -> dict[str, Path]:
    """The folders the course downloads into, keyed by what goes there."""
    import torch.hub

    return {
        "torchvision weights (TORCH_HOME)": Path(torch.hub.get_dir()),
        "Hugging Face models (HF_HOME)": hf_home(),
        "course datasets (LABKIT_DATA)": course_data_dir(),
    }
