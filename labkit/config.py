"""The cache folders and the three switches every lesson reads (lesson 00), from the environment
so that every runner (JupyterLab, nbval, papermill) passes them to the kernel alike."""

import os
from pathlib import Path

SMOKE_TEST_ENV = "LABKIT_SMOKE_TEST"  # tiny sizes, in seconds
OFFLINE_ENV = "LABKIT_OFFLINE"        # no downloads
STANDIN_ENV = "LABKIT_STANDIN"        # random weights and generated photos, said by a banner


def env_flag(name: str) -> bool:
    """An on/off switch from the environment; anything unclear is an error, not a guess."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on", "", "0", "false", "no", "off"):
        return value in ("1", "true", "yes", "on")
    raise ValueError(f"The environment variable {name}={os.environ[name]!r} is not on or off. "
                     "Fix: set it to 1 (on) or 0 (off), or unset it.")


def _cache(variable: str, default: str) -> Path:
    home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(os.environ.get(variable) or os.path.join(home, default))


def torch_checkpoints_dir() -> Path:
    """Where torchvision keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    return _cache("TORCH_HOME", "torch") / "hub" / "checkpoints"


def hf_hub_dir() -> Path:
    """Where Hugging Face keeps model repositories: ``$HF_HOME/hub``."""
    return Path(os.environ.get("HF_HUB_CACHE") or _cache("HF_HOME", "huggingface") / "hub")


def course_data_dir() -> Path:
    """Where the course's datasets go: ``$LABKIT_DATA`` (default ``~/.cache/labkit``)."""
    return _cache("LABKIT_DATA", "labkit")


def shipped_data_dir() -> Path:
    """The repository's ``data/`` folder: small data that comes with the course itself."""
    return Path(__file__).resolve().parents[1] / "data"


def cache_dirs() -> dict[str, Path]:
    """The folders the course downloads into, keyed by what goes there (for the doctor)."""
    return {"torchvision weights (TORCH_HOME)": torch_checkpoints_dir().parent,
            "Hugging Face models (HF_HOME)": _cache("HF_HOME", "huggingface"),
            "course datasets (LABKIT_DATA)": course_data_dir()}
