"""SGLang speculative-decoding gather: the draft extras of a batch read back from the future map.

0.5.11-0.5.12: `FutureMap.resolve_future` gathers topk_p, topk_index, verified_id (0.5.11) or
bonus_tokens (0.5.12), new_seq_lens and, when the draft model needs them, hidden_states by the same
`indices`, one index launch each, after `indices.record_stream(current stream)`. The AROUND hook on the
class (through HookRegistry) takes exactly that speculative branch: it keeps the `record_stream` call
(the overlap scheduler's contract: `indices` was made on another stream and loses its last Python
reference here) and gathers every buffer with hotfuse's `gather_rows` in one launch. Non-speculative
batches, prefill batches without a draft input and maps whose buffers are not allocated yet go to the
original method unchanged.

0.5.13-0.5.23: `FutureMap._resolve_spec_extras` already calls SGLang's one-launch Triton
`gather_spec_extras` (imported by name into `overlap_utils`). hotfuse's `gather_rows` replaces it (through
HookRegistry, which rebinds the `overlap_utils` copy): measured inside CUDA graphs on an H200 it is faster at
B = 1 (1.82 vs 2.16 us) and B = 256 (2.89 vs 3.59 us) and within 0.05 us either way for B = 8-64, less than
the run-to-run spread (docs/BENCHMARKS.md); it copies rows as 32-bit words. Same contract: the four outputs in order, None for absent hidden states,
empty outputs for zero indices.

reference (HOTFUSE_DISABLE=spec_gather): 0.5.11-0.5.12 are unfused already: nothing is patched.
0.5.13+: `gather_spec_extras` is replaced (HookRegistry rebinds the `overlap_utils` copy) by one index
gather per buffer: the kill switch for SGLang's own kernel.
"""

from __future__ import annotations

import torch

from hotfuse import safety
from hotfuse.adapters import AdapterPlan
from hotfuse.flags import Mode
from hotfuse.kernels import checks
from hotfuse.kernels.moe_postprocess import gather_rows_reference
from hotfuse.registry import State
from hotfuse.targets import Target

FUSION = "spec_gather"

RESOLVE_FUTURE = Target("sglang.srt.managers.overlap_utils", "FutureMap.resolve_future",
                        ("self", "model_worker_batch"),
                        {"4d13af52eb31cac5": "0.5.11", "7c2f291b82f170b4": "0.5.12"})
_GATHER_PARAMS = ("indices", "topk_p_buf", "topk_index_buf", "output_tokens_buf", "hidden_states_buf")
_GATHER_FINGERPRINTS = {"115a5e681efbea3d": "0.5.13-0.5.23"}
GATHER_0513 = Target("sglang.srt.speculative.triton_ops.gather_spec_extras", "gather_spec_extras",
                     _GATHER_PARAMS, _GATHER_FINGERPRINTS)
GATHER_0516 = Target("sglang.kernels.ops.speculative.gather_spec_extras", "gather_spec_extras",
                     _GATHER_PARAMS, _GATHER_FINGERPRINTS)
TARGETS = (RESOLVE_FUTURE, GATHER_0513, GATHER_0516)

# Draft-input fields that resolve_future fills, in order, by release (the buffer is `<field>_buf`).
_FIELDS_0511 = ("topk_p", "topk_index", "verified_id", "new_seq_lens")
_FIELDS_0512 = ("topk_p", "topk_index", "bonus_tokens", "new_seq_lens")


def _resolver(fields: tuple[str, ...]):
    def fused_resolve_future(original, self, model_worker_batch):
        draft_input = None if self.spec_algo.is_none() else model_worker_batch.spec_info
        if draft_input is None or not getattr(self, "buf_initialized", False):
            return original(self, model_worker_batch)
        indices = draft_input.future_indices.indices
        if indices.device.type != "cpu":  # record_stream is for device tensors only
            indices.record_stream(torch.get_device_module(self.device).current_stream())
        names = list(fields)
        if original.__globals__["spec_need_hidden_states"]():  # the engine's own switch, looked up live
            names.append("hidden_states")
        gathered = safety.call(checks.GATHER, indices, *(getattr(self, f"{name}_buf") for name in names))
        for name, value in zip(names, gathered):
            setattr(draft_input, name, value)

    return fused_resolve_future


def fused_gather_spec_extras(original, indices, topk_p_buf, topk_index_buf, output_tokens_buf, hidden_states_buf):
    return safety.call(checks.GATHER, indices, topk_p_buf, topk_index_buf, output_tokens_buf, hidden_states_buf)


def reference_gather_spec_extras(original, indices, topk_p_buf, topk_index_buf, output_tokens_buf,
                                 hidden_states_buf):
    safety.record_fallback(FUSION, "disabled: one index gather per buffer")
    return gather_rows_reference(indices, topk_p_buf, topk_index_buf, output_tokens_buf, hidden_states_buf)


def plan(mode: Mode, release: tuple[int, ...]) -> AdapterPlan:
    if release < (0, 5, 13):
        if mode is Mode.REFERENCE:
            return AdapterPlan(State.REFERENCE, "engine's own per-buffer gathers (it has no fused gather)")
        fields = _FIELDS_0512 if release >= (0, 5, 12) else _FIELDS_0511
        return AdapterPlan(State.ACTIVE, "FutureMap.resolve_future gathers the speculative extras with one "
                           "gather_rows launch", ((RESOLVE_FUTURE, _resolver(fields)),))
    gather = GATHER_0516 if release >= (0, 5, 16) else GATHER_0513
    if mode is Mode.REFERENCE:
        return AdapterPlan(State.REFERENCE, "gather_spec_extras replaced by one index gather per buffer "
                           "(SGLang's Triton gather is not used)", ((gather, reference_gather_spec_extras),))
    return AdapterPlan(State.ACTIVE, "gather_spec_extras replaced by hotfuse's gather_rows (one launch, "
                       "32-bit word copies)", ((gather, fused_gather_spec_extras),))
