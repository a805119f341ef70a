"""SGLang sampler: temperature + softmax (and, in the simple case, the sampling itself) fused.

Target: `sglang.srt.layers.sampler.Sampler.forward` (0.5.11-0.5.23), wrapped on the class through
HookRegistry, so sampler instances already built pick it up. The standard path there is
`logits.div_(temperatures)`, `softmax`, then `_sample_from_probs`. The wrapper takes exactly that path
and hands every other case to the original forward, unchanged:

- greedy batches, logprobs requested, `logprob_logits` (0.5.22+), an RL on-policy target,
  `--enable-deterministic-inference` or a sampling seed, the Ascend backend, sampling-mask capture;
- logits the kernels cannot take (counted with the kernels' reason, e.g. `device=cpu`).

Taken path: the engine's `_preprocess_logits` (custom logit processors, NaN handling) runs first; then
- no top-k / top-p / min-p: `temperature_sample` draws the token in one pass over the logits, no
  probabilities written (Gumbel-max with per-row Philox seeds drawn from torch's CUDA generator on the
  device, so no host sync);
- otherwise: `filtered_sample` draws it in one launch, under the rule of the sampling backend that
  `_sample_from_probs` would have run: `flashinfer` (the default on CUDA) joint top-k/top-p on the row's mass,
  or with min-p in the batch top-k, top-p on the renormalised rest, then min-p (`SGLANG_WITH_MIN_P`);
  `pytorch` joint top-k/top-p, then min-p, whatever the batch. Greedy requests in a sampled batch come as
  top-k 1 (SGLang's own encoding) and draw their largest logit there. Other backends, and inputs the filtered
  kernel does not take: `temperature_softmax` writes the probabilities in place of the logits (SGLang relies
  on `probs` aliasing the logits buffer) and the engine's own `_sample_from_probs` applies the filters.
Then the engine's `_sync_token_ids_across_tp`. Token ids are returned as int32, as SGLang's sampling
paths do.

Warm-up: the first call of the wrapped forward (SGLang's server warm-up request, a greedy one) compiles
both kernels on a dummy batch shaped like the real logits, so no sampled request pays for compilation.

reference (HOTFUSE_DISABLE=sampler): SGLang has no fused sampler on CUDA; the wrapper is not installed
and the engine's own path runs exactly (0.5.22+ keep their `sampler_softmax` helper, which on CUDA is
plain torch.softmax; on HIP the engine's own split kernel is left alone).
"""

from __future__ import annotations

import sys
from functools import partial

import torch

from hotfuse import safety
from hotfuse.adapters import AdapterPlan, first_call
from hotfuse.flags import Mode
from hotfuse.kernels import checks
from hotfuse.kernels.sampling import warm_up
from hotfuse.kernels.sampling.filtered import CUDA_MAX_ROWS
from hotfuse.kernels.sampling.filters import RULES, SGLANG_WITH_MIN_P
from hotfuse.registry import State
from hotfuse.targets import Target

FUSION = "sampler"
DESCRIPTION = ("temperature + sample in one launch; with top-k, top-p, min-p or greedy rows, an exact filtered draw "
               "(a split threshold search, then the same race) under the sampling backend's rule")
if not CUDA_MAX_ROWS:
    DESCRIPTION += (" (on CPU only for now: exact on an H100 but slower than SGLang's own sampling there, so CUDA "
                    "keeps the temperature+softmax kernel and SGLang's own sampling)")
else:
    DESCRIPTION += (f" (on CUDA for batches of up to {CUDA_MAX_ROWS} rows, where it measured faster than SGLang's own "
                    "sampling; larger CUDA batches keep the temperature+softmax kernel and SGLang's own sampling)")
_MODULE = "sglang.srt.layers.sampler"
_FORWARD_PARAMS = ("self", "logits_output", "sampling_info", "return_logprob", "top_logprobs_nums",
                   "token_ids_logprobs", "positions")

# Fingerprints of every release read (`hotfuse fingerprint`); the gates above were checked against each.
FORWARD_0511 = Target(_MODULE, "Sampler.forward", _FORWARD_PARAMS, {
    "b808c33dcc9031e0": "0.5.11-0.5.12", "efb9c3dd33727c12": "0.5.13-0.5.15", "fa2565123127a342": "0.5.16",
    "2179a3f874feb16d": "0.5.17", "e69435270ef49e04": "0.5.18", "bc6e46bb8f40d8fd": "0.5.19",
    "a223e1ff3f3ed5cd": "0.5.20", "d48e9ce38cf64f32": "0.5.21"})
FORWARD_0522 = Target(_MODULE, "Sampler.forward", _FORWARD_PARAMS + ("logprob_logits",), {
    "153666a2917052de": "0.5.22-0.5.23"})
PREPROCESS = Target(_MODULE, "Sampler._preprocess_logits", ("self", "logits", "sampling_info"), {
    "d1bf3493e2e43e5b": "0.5.11-0.5.12", "c521ce7a3e8df965": "0.5.13", "20237a1055daf21e": "0.5.14-0.5.23"})
SAMPLE_FROM_PROBS = Target(_MODULE, "Sampler._sample_from_probs",
                           ("self", "probs", "sampling_info", "positions", "simple_sampling_case"), {
    "03de67edf9b816f2": "0.5.11-0.5.12", "3016f25adecb9410": "0.5.13-0.5.14", "751cdd24f0c2bb16": "0.5.15",
    "4b1b6d7a1687b4c1": "0.5.16", "58d362daf5164669": "0.5.17-0.5.19", "3fee8760937c89ba": "0.5.20",
    "1701c1584cdfd04a": "0.5.21", "9b126843e0184f73": "0.5.22-0.5.23"})
SYNC_TP = Target(_MODULE, "Sampler._sync_token_ids_across_tp", ("self", "batch_next_token_ids", "sampling_info"), {
    "edf21ffd7ff69bdf": "0.5.11-0.5.23"})
TARGETS = (FORWARD_0511, FORWARD_0522, PREPROCESS, SAMPLE_FROM_PROBS, SYNC_TP)


def _not_taken(sampler, sampling_info, return_logprob, logprob_logits) -> str | None:
    """Why this batch keeps the engine's own path (None: take the fused path)."""
    if sampling_info.is_all_greedy:
        return "greedy batch"
    if return_logprob or logprob_logits is not None:
        return "logprobs requested"
    if getattr(sampler, "enable_deterministic", False) or sampling_info.sampling_seed is not None:
        return "deterministic inference / sampling seed"
    if getattr(sampler, "rl_on_policy_target", None) is not None:
        return "rl on-policy target"
    if getattr(sampler, "use_ascend_backend", False):
        return "ascend backend"
    if any(getattr(sampling_info, "return_sampling_masks", None) or []) or \
            getattr(sampling_info, "sampling_mask_batch_indices", None) is not None:
        return "sampling mask capture"
    return None


def _sampling_backend() -> str:
    """The backend `_sample_from_probs` reads, where the release keeps it (0.5.11-0.5.2x moved it from the server
    args to the execution config)."""
    module = sys.modules[_MODULE]
    if hasattr(module, "get_exec"):
        return module.get_exec().kernel.sampling_backend
    return module.get_global_server_args().sampling_backend


def _filter_rule(sampling_info):
    """The rule of the backend `_sample_from_probs` would run, or None for a backend the kernel does not follow."""
    backend = _sampling_backend()
    if backend == "flashinfer":
        return SGLANG_WITH_MIN_P if sampling_info.need_min_p_sampling else RULES["sglang"]
    if backend == "pytorch":  # joint on the row's mass, min-p last, whether or not the batch has min-p
        return RULES["sglang"]
    return None


def fused_forward(original, self, logits_output, sampling_info, return_logprob, top_logprobs_nums,
                  token_ids_logprobs, positions, *args, **kwargs):
    logits = logits_output.next_token_logits
    if logits is not None and first_call("sglang.sampler"):
        # a kernel that cannot compile here trips the fusion
        safety.warm_up(FUSION, partial(warm_up, filter_rules=(RULES["sglang"], SGLANG_WITH_MIN_P)), logits)
    why = _not_taken(self, sampling_info, return_logprob, kwargs.get("logprob_logits"))
    if why is None and logits is None:
        why = "no logits"
    if why is not None:
        safety.record_fallback(FUSION, why)
    elif safety.declines(checks.SOFTMAX, logits, sampling_info.temperatures) is not None:  # both kernels' rule
        why = "logits the kernels do not take"
    elif logits.shape[0] == 0:
        why = "empty batch"
        safety.record_fallback(FUSION, why)
    if why is not None:
        return original(self, logits_output, sampling_info, return_logprob, top_logprobs_nums,
                        token_ids_logprobs, positions, *args, **kwargs)
    logits = self._preprocess_logits(logits, sampling_info)
    temperatures = sampling_info.temperatures
    if not (sampling_info.need_top_p_sampling or sampling_info.need_top_k_sampling
            or sampling_info.need_min_p_sampling):
        seeds = torch.randint(0, 1 << 62, (logits.shape[0],), dtype=torch.int64, device=logits.device)
        ids = safety.call(checks.SAMPLE, logits, temperatures, seeds, checked=True)
    else:
        rule = _filter_rule(sampling_info)
        seeds = torch.randint(0, 1 << 62, (logits.shape[0],), dtype=torch.int64, device=logits.device)
        filters = (sampling_info.top_ks, sampling_info.top_ps, sampling_info.min_ps)
        if rule is not None and safety.declines(checks.FILTERED_SAMPLE, logits, temperatures, *filters, seeds,
                                                rule) is None:
            ids = safety.call(checks.FILTERED_SAMPLE, logits, temperatures, *filters, seeds, rule, checked=True)
        else:
            ids = None
    if ids is None:
        probs = safety.call(checks.SOFTMAX_INPLACE, logits, temperatures, checked=True)
        ids = self._sample_from_probs(probs, sampling_info, positions, False)
        if isinstance(ids, tuple):  # 0.5.20+: (ids, sampling-mask capture); capture is off on this path
            ids = ids[0]
    ids = ids.view(-1).to(torch.int32)
    self._sync_token_ids_across_tp(ids, sampling_info)
    return ids


def plan(mode: Mode, release: tuple[int, ...]) -> AdapterPlan:
    if mode is Mode.REFERENCE:
        return AdapterPlan(State.REFERENCE, "SGLang's own div_ + softmax path runs (it has no fused sampler on CUDA)")
    forward = FORWARD_0522 if release >= (0, 5, 22) else FORWARD_0511
    return AdapterPlan(
        State.ACTIVE,
        DESCRIPTION,
        ((forward, fused_forward),),
        requires=(PREPROCESS, SAMPLE_FROM_PROBS, SYNC_TP),
    )
