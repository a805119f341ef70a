"""Shared test set-up.

On machines without a CUDA GPU (CI), Triton kernels run on CPU tensors through Triton's interpreter.
TRITON_INTERPRET must be set before any @triton.jit function is defined, hence here, before test modules
import the kernels. On the GPU box it stays unset so the GPU suite runs compiled kernels. Engine
subprocesses started by the integration tests get an environment without it unless a test asks for it
(tests/helpers.py: clean_env).

`fresh_hotfuse`: this test process as if hotfuse had just been imported (hotfuse.runtime.reset: nothing loaded
or patched, counters and safety nets at zero, flags read from the environment again), before and after the
test. Calling it with variables, `fresh_hotfuse(HOTFUSE="1", HOTFUSE_SHADOW="0.5")`, sets them for the test and
resets again, so the process flags are read from them.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def fresh_hotfuse(monkeypatch):
    from hotfuse.runtime import reset

    def configure(**environ):
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        reset()

    reset()
    yield configure
    reset()
