"""Which device to compute on, how much memory it has, and reproducible seeds.

Every lesson starts with::

    from labkit.device import get_device, seed_everything
    device = get_device()
    seed_everything(0)

and then passes ``device`` explicitly to everything that needs it.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["get_device", "device_memory", "describe_device", "seed_everything"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(prefer: str | None = None, *, verbose: bool = True) -> torch.device:
    """Pick the fastest device present: CUDA, then Apple's MPS, then the CPU.

    ``prefer`` (``"cuda"``, ``"mps"`` or ``"cpu"``) asks for one device; asking for one
    that is not there raises an error naming what is. With ``verbose`` the choice is
    printed, so a lesson's output always says where it ran.
    """
    available = ["cpu"]
    if _mps_available():
        available.insert(0, "mps")
    if torch.cuda.is_available():
        available.insert(0, "cuda")

    if prefer is None:
        device = torch.device(available[0])
    else:
        device = torch.device(prefer)
        if device.type not in available:
            raise RuntimeError(
                f"Device {prefer!r} was asked for, but this machine has only "
                f"{', '.join(available)}. Fix: call get_device() without an argument "
                f"to use the best device present."
            )
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise RuntimeError(
                f"Device {prefer!r} was asked for, but this machine has "
                f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0. "
                f"Fix: use 'cuda:0', or 'cuda' for the first GPU."
            )

    if verbose:
        print(f"labkit: using {describe_device(device)}")
    return device


def device_memory(device: torch.device | str) -> tuple[int | None, int | None]:
    """(free, total) memory in bytes of the device; None where it cannot be known."""
    device = torch.device(device)
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(free), int(total)
    if device.type == "mps":
        # MPS shares the machine's memory; torch reports the budget it allows itself.
        return None, int(torch.mps.recommended_max_memory())
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return page * os.sysconf("SC_AVPHYS_PAGES"), page * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system (Windows)
        return None, None


def describe_device(device: torch.device | str) -> str:
    """One line naming the device and its memory, e.g. ``cuda:0 (NVIDIA H100, 79.1 GB)``."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        name = "Apple GPU via Metal"
    else:
        name = f"{os.cpu_count()} CPU cores"
    _, total = device_memory(device)
    memory = f", {total / 1e9:.1f} GB" if total else ""
    return f"{device} ({name}{memory})"


def seed_everything(seed: int, *, deterministic: bool = False) -> int:
    """Seed Python, NumPy and PyTorch (every GPU too) so a run can be repeated.

    ``deterministic=True`` also asks PyTorch for deterministic kernels, which can be
    slower and makes operations without a deterministic version raise an error.
    Returns the seed so it can be logged.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ValueError(
            f"seed must be a whole number from 0 to 2**32 - 1, got {seed!r}. "
            f"Fix: pass an int such as seed_everything(0)."
        )
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds the CPU and every CUDA device
    os.environ["PYTHONHASHSEED"] = str(seed)  # for worker processes started later
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        # cuBLAS needs this to be deterministic on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return seed
