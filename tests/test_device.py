import os
import random

import numpy as np
import pytest
import torch

from labkit.device import describe_device, get_device, seed_everything


def test_get_device_picks_the_best_device_present_and_says_so(capsys):
    device = get_device()
    if torch.cuda.is_available():
        expected = "cuda"
    elif torch.backends.mps.is_available():
        expected = "mps"
    else:
        expected = "cpu"
    assert device.type == expected
    assert capsys.readouterr().out.startswith(f"labkit: using {expected}")


def test_get_device_can_be_quiet(capsys):
    get_device(verbose=False)
    assert capsys.readouterr().out == ""


def test_cpu_description_names_the_cores():
    assert describe_device("cpu") == f"cpu ({os.cpu_count()} CPU cores)"


def draw():
    return random.random(), np.random.rand(), torch.rand(3)


def test_seed_everything_repeats_every_random_source():
    seed_everything(123)
    first = draw()
    draw()  # move every generator on
    seed_everything(123)
    again = draw()
    assert first[0] == again[0] and first[1] == again[1]
    assert torch.equal(first[2], again[2])
    seed_everything(124)
    assert draw()[0] != first[0]


def test_deterministic_mode_turns_on_deterministic_kernels():
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
