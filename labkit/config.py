"""Where the course keeps downloaded files, and the two switches every lesson reads.

The course reuses the standard caches, so weights a learner already has are found:

- torchvision weights: ``TORCH_HOME`` (default ``~/.cache/torch``), in its ``hub`` folder;
- Hugging Face checkpoints: ``HF_HOME`` (default ``~/.cache/huggingface``);
- datasets the course downloads: ``LABKIT_DATA`` (default ``~/.cache/labkit``).

Switches, read from the environment so that every runner (JupyterLab, nbval, papermill)
passes them to the kernel the same way:

- ``LABKIT_SMOKE_TEST=1``: lessons run at tiny sizes, in seconds (what CI runs);
- ``LABKIT_OFFLINE=1``: nothing is downloaded; lessons use what is cached or say what is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SMOKE_TEST_ENV", "OFFLINE_ENV", "env_flag", "cache_dirs"]

SMOKE_TEST_ENV = "LABKIT_SMOKE_TEST"
OFFLINE_ENV = "LABKIT_OFFLINE"

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


def cache_dirs() -> dict[str, Path]:
    """The folders the course downloads into, keyed by what goes there."""
    import torch.hub  # late: reading a path should not cost a torch import for the CLI help

    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    data = os.environ.get("LABKIT_DATA") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "labkit"
    )
    return {
        "torchvision weights (TORCH_HOME)": Path(torch.hub.get_dir()),
        "Hugging Face models (HF_HOME)": Path(hf_home),
        "course datasets (LABKIT_DATA)": Path(data),
    }
