"""Drives a real SGLang `FutureMap` (overlap scheduler, speculative decoding) on CPU after loading hotfuse's
SGLang plugin the way the scheduler does: stores the draft extras of one batch, resolves them for a later
batch in another order, and prints a JSON line with what came back and which code gathered it.

0.5.11-0.5.12 (`store_to_map_for_new_batch` / `resolve_future`) and 0.5.13+ (`stash` /
`_resolve_spec_extras`). FutureMap, its buffers, SpeculativeAlgorithm, spec_need_hidden_states and (0.5.13+)
the EagleDraftInput are SGLang's; the batches are plain holders of the one field FutureMap reads (and, for
0.5.11-0.5.12, the stored draft input of the fields it stores).
Run as a subprocess by tests/engines/test_sglang_adapters.py with HOTFUSE flags (and TRITON_INTERPRET=1) set.
"""

import json
import traceback
from types import SimpleNamespace

import torch
from sglang.srt.plugins import load_plugins

load_plugins()

from sglang_cpu_context import init_sglang_cpu  # noqa: E402

init_sglang_cpu(speculative_algorithm="EAGLE", enable_multi_layer_eagle=False)

import sglang  # noqa: E402
from hotfuse import counters  # noqa: E402
from sglang.srt.managers import overlap_utils  # noqa: E402
from sglang.srt.speculative.spec_info import SpeculativeAlgorithm  # noqa: E402

TOPK, HIDDEN, BATCH = 4, 64, 5
g = torch.Generator().manual_seed(0)
stored = {
    "topk_p": torch.rand(BATCH, TOPK, generator=g),
    "topk_index": torch.randint(0, 1000, (BATCH, TOPK), generator=g),
    "bonus_tokens": torch.randint(0, 1000, (BATCH,), generator=g),
    "new_seq_lens": torch.randint(1, 100, (BATCH,), generator=g),
    "hidden_states": torch.randn(BATCH, HIDDEN, generator=g).half(),  # bf16 is broken in Triton's interpreter
}
order = torch.tensor([3, 0, 4, 4, 1])  # the later batch: reordered, one request twice
spec_algo = SpeculativeAlgorithm.EAGLE
error = None
future_map_class = overlap_utils.FutureMap

if hasattr(future_map_class, "resolve_future"):  # 0.5.11-0.5.12
    token_field = "verified_id" if "verified_id_buf" in future_map_class._lazy_init_buf.__code__.co_names \
        else "bonus_tokens"
    fields = ["topk_p", "topk_index", token_field, "new_seq_lens", "hidden_states"]
    fm = future_map_class(max_running_requests=8, chunked_prefill_size=64, context_len=128,
                          device=torch.device("cpu"), spec_algo=spec_algo)
    slots = fm.alloc_future_indices(BATCH)
    draft = SimpleNamespace(**{token_field if k == "bonus_tokens" else k: v for k, v in stored.items()})
    fm.store_to_map_for_new_batch(slots, draft)
    later = SimpleNamespace(future_indices=overlap_utils.FutureIndices(indices=slots.indices[order]))
    try:
        fm.resolve_future(SimpleNamespace(spec_info=later))
    except RuntimeError as exc:  # SGLang's own 0.5.11-0.5.12 code calls record_stream, which CPU tensors reject
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        error = f"{frame.name}: {frame.line}"
    resolver = future_map_class.resolve_future
else:  # 0.5.13+
    fields = ["topk_p", "topk_index", "bonus_tokens", "hidden_states"]
    fm = future_map_class(device=torch.device("cpu"), spec_algo=spec_algo,
                          req_to_token_pool=SimpleNamespace(req_to_token=torch.zeros(16, 8, dtype=torch.int32)))
    slots = torch.arange(2, 2 + BATCH)
    fm.stash(slots, overlap_utils.RelayPayload(**{k: v for k, v in stored.items() if k != "new_seq_lens"}))
    later = fm.make_staged_spec_input(slots[order])  # a real EagleDraftInput, as SGLang builds one
    fm._resolve_spec_extras(SimpleNamespace(spec_info=later))
    resolver = future_map_class._resolve_spec_extras

got = {name: getattr(later, name, None) for name in fields}
expected = {name: stored["bonus_tokens" if name == "verified_id" else name][order] for name in fields}
gather = getattr(overlap_utils, "gather_spec_extras", None)
print("HOTFUSE_FUTURE_MAP_RESULT " + json.dumps({
    "sglang_version": sglang.__version__,
    "fields": fields,
    "error": error,
    "equal": {name: got[name] is not None and bool(torch.equal(got[name], expected[name])) for name in fields},
    "dtypes_kept": all(got[n] is not None and got[n].dtype == expected[n].dtype for n in fields),
    "resolver_hooked": any(getattr(c, "__hotfuse__", None) for c in (resolver, getattr(resolver, "__wrapped__", None))),
    "gather_spec_extras": None if gather is None else getattr(gather, "__hotfuse__", None) or "sglang",
    "counters": counters.snapshot()["spec_gather"],
}), flush=True)
