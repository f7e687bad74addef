"""Which device to compute on, and reproducible seeds: every lesson starts with
``device = get_device()`` and ``seed_everything(SEED)``, then passes ``device`` explicitly."""

import os
import random

import numpy as np
import torch


def get_device(*, verbose: bool = True) -> torch.device:
    """The GPU (CUDA or Apple's MPS) if there is one, else the CPU. Lesson 00."""
    device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")
    if verbose:
        print(f"labkit: using {describe_device(device)}")
    return device


def describe_device(device: torch.device | str) -> str:
    """The device, with a GPU's memory, e.g. ``cuda:0 (NVIDIA H100, 79.1 GB)``. Lesson 05."""
    device = torch.device(device)
    if device.type == "cuda":
        name, total = torch.cuda.get_device_name(device), torch.cuda.mem_get_info(device)[1]
    elif device.type == "mps":  # shared memory: torch reports the budget it allows itself
        name, total = "Apple GPU via Metal", torch.mps.recommended_max_memory()
    else:  # a CPU by its cores: its memory has no portable query (os.sysconf is not on Windows)
        name, total = f"{os.cpu_count()} CPU cores", None
    return f"{device} ({name}{f', {total / 1e9:.1f} GB' if total else ''})"


def seed_everything(seed: int, *, deterministic: bool = False) -> int:
    """Seed Python, NumPy and PyTorch (every GPU too) so a run repeats; ``deterministic=True``
    also asks for deterministic kernels (slower; ops without one raise). Lesson 00."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # the CPU and every CUDA device
    os.environ["PYTHONHASHSEED"] = str(seed)  # for worker processes started later
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS, CUDA >= 10.2
    return seed
