"""Shared fixtures: the devices to test on and the hypothesis profile."""

import pytest
import torch
from hypothesis import settings

#: every device present: the CPU, plus CUDA when torch sees a GPU
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# Few, reproducible examples: the whole suite runs in about a minute on 2 cores.
settings.register_profile("convlib", max_examples=20, deadline=None, derandomize=True)
settings.load_profile("convlib")

# The tensors here are tiny: one thread is as fast, and immune to a busy second core.
torch.set_num_threads(1)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param
