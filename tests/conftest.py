"""On machines without a CUDA GPU (CI), Triton kernels run on CPU tensors through Triton's interpreter.

TRITON_INTERPRET must be set before any @triton.jit function is defined, hence here, before test modules
import the kernels. On the GPU box it stays unset so the GPU suite runs compiled kernels. Engine
subprocesses started by the integration tests get an environment without it unless a test asks for it
(tests/helpers.py: clean_env).
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
