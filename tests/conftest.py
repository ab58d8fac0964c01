"""Shared fixtures: the devices to test on and the hypothesis profile."""

import pytest
import torch
from hypothesis import settings

#: every device present: the CPU, plus CUDA when torch sees a GPU
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# Few, reproducible examples: the whole suite runs in about a minute on 2 cores.
settings.register_profile("convlib", max_examples=20, deadline=None, derandomize=True)
settings.load_profile("convlib")


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param
