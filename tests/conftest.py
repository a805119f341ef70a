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

import inspect
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _patch_language_once_per_launch():
    """Triton's interpreter patches triton.language at each launch (and restores it after), and again at every
    call of a nested @triton.jit function, which finds everything patched already and changes nothing but costs
    four scans of the language's members (about 2 ms a call: most of the filtered-sampling tests' time). Here a
    nested call inside a launch skips that second patching. Launches patch and restore as before."""
    try:
        import triton.language as tl
        from triton.runtime import interpreter
    except ImportError:
        return
    if not hasattr(interpreter, "_patch_lang") or not hasattr(interpreter, "_LangPatchScope"):
        return
    patch_lang = interpreter._patch_lang

    def patch_unless_patched(fn):
        # the language modules the function sees (as _patch_lang finds them), patched already when their `load`
        # is no longer the registered builtin
        langs = [v for v in fn.__globals__.values() if inspect.ismodule(v) and v in (tl, tl.core)]
        if langs and not any(tl.core.is_builtin(getattr(lang, "load", None)) for lang in langs):
            return interpreter._LangPatchScope()
        return patch_lang(fn)

    interpreter._patch_lang = patch_unless_patched


if os.environ.get("TRITON_INTERPRET") == "1":
    _patch_language_once_per_launch()


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
