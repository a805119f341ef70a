"""Gemma4 MoE routing in one launch: top-k over the router logits, softmax over the K chosen logits in fp32,
times the chosen experts' `per_expert_scale`.

gemma4_route(gating_output [T, E], per_expert_scale [E], topk, is_padding=None)
    -> (weights [T, K] fp32, ids [T, K] int32)

Experts come out in descending logit order; equal logits go to the lower expert id, always (every TP/EP
rank must pick the same experts). Any float dtype in; all math in fp32 (SGLang reverted a routing kernel
for a BF16 precision regression, #26588). NaN logits are treated as -inf (never routed to).
`per_expert_scale` is read on every call, so in-place weight updates take effect. `is_padding` ([>= T] bool on
the logits' device, read on the device): rows marked True are CUDA-graph or data-parallel padding and get
expert id -1 and weight 0 in every slot (vLLM 0.34's skip sentinel), inside the same launch.

Two kernels, both fixed geometry per (T, E, K), no atomics, no host sync (they capture in CUDA graphs):
- bf16 / fp16 logits, 33-256 experts (an even count), 4-byte aligned rows: "sorted lanes". A warp routes
  a token (two per thread group): each of its 32 lanes loads E/32 logits as 32-bit words, packs them into
  32-bit keys (the logit's exact 16-bit pattern made order-preserving above, E-1-expert below, so the
  largest key is the largest logit and, among equal logits, the lowest expert), and sorts its few keys
  in registers. Then K rounds of one warp-wide integer max over the lanes' heads; the winning lane pops
  its head. NaN logits rank exactly as -inf: keys are built without that rule first and the program
  recomputes with it only when a pick shows a NaN could matter (a positive NaN picked, or a pick at -inf).
- Everything else (fp32 logits, which need 64-bit keys; other expert counts): each program routes BLOCK_T
  tokens as a [BLOCK_T, E] tile of packed keys, K rounds of one row-max each.
Both engines' kernels instead sort all E experts per token in a single-warp program.
Inputs no kernel takes (E > 1024, a non-unit expert stride, CPU tensors without the interpreter, bf16 in
the interpreter; `unsupported_reason` says why) run the torch reference. `run_gemma4_route` is the kernels alone,
for callers that checked the inputs already (hotfuse.safety). This module knows nothing about engines and keeps no
books.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hotfuse.kernels import interpreting, placement_reason, tl, triton

MAX_EXPERTS = 1024


def mask_padded_rows(weights: torch.Tensor, ids: torch.Tensor,
                     is_padding: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded rows get id -1 and weight 0 in every slot (the unfused epilogue; the kernels do it in-launch)."""
    if is_padding is None:
        return weights, ids
    pad = is_padding[:ids.shape[0]].to(torch.bool).unsqueeze(1)
    return weights.masked_fill(pad, 0.0), ids.masked_fill(pad, -1)


def gemma4_route_reference(gating_output: torch.Tensor, per_expert_scale: torch.Tensor, topk: int,
                           is_padding: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The unfused torch path, with the same tie rule (stable sort: lower id first), NaN rule and padding rule."""
    logits = gating_output.float()
    logits = torch.where(torch.isnan(logits), float("-inf"), logits)
    values, ids = torch.sort(logits, dim=-1, descending=True, stable=True)
    values, ids = values[:, :topk], ids[:, :topk]
    weights = torch.softmax(values, dim=-1) * per_expert_scale.float()[ids]
    return mask_padded_rows(weights, ids.to(torch.int32), is_padding)


def _check_contract(gating_output: torch.Tensor, per_expert_scale: torch.Tensor, topk: int | None,
                    is_padding: torch.Tensor | None = None) -> None:
    if is_padding is not None and (is_padding.dim() != 1 or is_padding.shape[0] < gating_output.shape[0]):
        raise ValueError(f"is_padding must be [>= T] = [>= {gating_output.shape[0]}], got {tuple(is_padding.shape)}")
    if gating_output.dim() != 2:
        raise ValueError(f"gating_output must be [T, E], got shape {tuple(gating_output.shape)}")
    experts = gating_output.shape[1]
    if per_expert_scale.dim() != 1 or per_expert_scale.shape[0] != experts:
        raise ValueError(f"per_expert_scale must be [E] = [{experts}], got {tuple(per_expert_scale.shape)}")
    if topk is not None and not 1 <= topk <= experts:
        raise ValueError(f"topk must be in [1, {experts}], got {topk}")


def unsupported_reason(gating_output: torch.Tensor, per_expert_scale: torch.Tensor,
                       is_padding: torch.Tensor | None = None, topk: int | None = None) -> str | None:
    """Why the kernels cannot take these inputs, or None when they can. Inputs outside the contract (topk checked
    when given) raise ValueError."""
    _check_contract(gating_output, per_expert_scale, topk, is_padding)
    reason = placement_reason(gating_output, floats=True)
    if reason is not None:
        return reason
    if interpreting() and per_expert_scale.dtype == torch.bfloat16:
        return "dtype=bfloat16 under the Triton interpreter"
    if gating_output.shape[1] > MAX_EXPERTS:
        return f"experts={gating_output.shape[1]} > {MAX_EXPERTS}"
    if gating_output.shape[0] and gating_output.stride(1) != 1:
        return "non-contiguous experts"
    if per_expert_scale.device != gating_output.device:
        return "per_expert_scale on another device"
    if is_padding is not None and (is_padding.device != gating_output.device or is_padding.dtype != torch.bool
                                   or (is_padding.shape[0] > 1 and is_padding.stride(0) != 1)):
        return "is_padding not a contiguous bool tensor on the logits' device"
    return None


if triton is not None:

    @triton.jit
    def _gemma4_route_kernel(gating_ptr, row_stride, scale_ptr, weights_ptr, ids_ptr, padding_ptr, tokens, experts,
                             TOPK: tl.constexpr, TOPK_P2: tl.constexpr, BLOCK_T: tl.constexpr,
                             BLOCK_E: tl.constexpr, KEY_BITS: tl.constexpr, NAN_FROM: tl.constexpr,
                             HAS_PADDING: tl.constexpr):
        # Each (token, expert) becomes one integer key: the logit's bits made order-preserving as a signed
        # integer in the high half, (BLOCK_E - 1 - expert) in the low half. The row maximum of the keys is
        # then the largest logit and, among equal logits, the lowest expert: one reduction per round.
        # 16-bit logits (bf16 / fp16) fit a 32-bit key with their exact bits (KEY_BITS=32: half the work of
        # the 64-bit keys that fp32 logits need); NAN_FROM is the smallest NaN magnitude of that format.
        t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
        e = tl.arange(0, BLOCK_E)
        in_tokens = t < tokens
        valid = in_tokens[:, None] & (e < experts)[None, :]
        raw = tl.load(gating_ptr + t.to(tl.int64)[:, None] * row_stride + e[None, :], mask=valid,
                      other=float("-inf"))
        if KEY_BITS == 32:
            bits = raw.to(tl.int16, bitcast=True).to(tl.int32)  # sign-extended 16-bit pattern
            magnitude = bits & 0x7FFF
            bits = tl.where(magnitude > NAN_FROM, NAN_FROM - 32768, bits)  # NaN never wins: -inf's pattern
            bits = tl.where(magnitude == 0, 0, bits)  # -0.0 ties with +0.0, as in a comparison sort
            ordered = bits ^ ((bits >> 15) & 0x7FFF)  # monotonic in the logit as a signed integer
            keys = (ordered << 16) | (BLOCK_E - 1 - e)[None, :]
            lowest: tl.constexpr = -2147483648
        else:
            x = raw.to(tl.float32)
            x = tl.where(x != x, float("-inf"), x)  # NaN never wins
            x = tl.where(x == 0.0, 0.0, x)  # -0.0 ties with +0.0, as in a comparison sort
            bits = x.to(tl.int32, bitcast=True)
            ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # monotonic in x as a signed integer
            keys = (ordered.to(tl.int64) << 32) | (BLOCK_E - 1 - e)[None, :].to(tl.int64)
            lowest: tl.constexpr = -9223372036854775808
        keys = tl.where(valid, keys, lowest)
        k_cols = tl.arange(0, TOPK_P2)
        top_keys = tl.full([BLOCK_T, TOPK_P2], lowest, keys.dtype)
        for k in tl.static_range(TOPK):
            best = tl.max(keys, axis=1)
            keys = tl.where(keys == best[:, None], lowest, keys)  # keys are unique: this takes one expert
            top_keys = tl.where(k_cols[None, :] == k, best[:, None], top_keys)
        in_k = k_cols[None, :] < TOPK
        if KEY_BITS == 32:
            ids = BLOCK_E - 1 - (top_keys & 0xFFFF)
            top_ordered = top_keys >> 16
            top_bits = top_ordered ^ ((top_ordered >> 15) & 0x7FFF)
            top_vals = top_bits.to(tl.int16).to(raw.dtype, bitcast=True).to(tl.float32)
        else:
            ids = (BLOCK_E - 1 - (top_keys & 0xFFFFFFFF)).to(tl.int32)
            top_ordered = (top_keys >> 32).to(tl.int32)
            top_bits = top_ordered ^ ((top_ordered >> 31) & 0x7FFFFFFF)
            top_vals = top_bits.to(tl.float32, bitcast=True)
        # softmax over the K chosen logits; the first is their maximum
        first = tl.max(tl.where(in_k, top_vals, float("-inf")), axis=1)
        _store_routes(tl.where(in_k, tl.exp(top_vals - first[:, None]), 0.0), ids, t, in_tokens, in_k, k_cols,
                      scale_ptr, weights_ptr, ids_ptr, padding_ptr, TOPK, HAS_PADDING)

    @triton.jit
    def _store_routes(p, ids, t, in_tokens, in_k, k_cols, scale_ptr, weights_ptr, ids_ptr, padding_ptr,
                      TOPK: tl.constexpr, HAS_PADDING: tl.constexpr):
        """Normalise the K exponentials of each token, times the chosen experts' scales; write weights and ids.
        Padded tokens (HAS_PADDING: padding_ptr[t] true) get id -1 and weight 0."""
        p = p / tl.sum(p, axis=1)[:, None]
        mask = in_tokens[:, None] & in_k
        scale = tl.load(scale_ptr + tl.where(mask, ids, 0), mask=mask, other=0.0).to(tl.float32)
        weights = p * scale
        if HAS_PADDING:
            padded = (tl.load(padding_ptr + t, mask=in_tokens, other=0).to(tl.int32) != 0)[:, None]
            weights = tl.where(padded, 0.0, weights)
            ids = tl.where(padded, -1, ids)
        out = t.to(tl.int64)[:, None] * TOPK + k_cols[None, :]
        tl.store(weights_ptr + out, weights, mask=mask)
        tl.store(ids_ptr + out, ids, mask=mask)


    @triton.jit
    def _lane_key(bits, low, HANDLE_NAN: tl.constexpr, NAN_FROM: tl.constexpr):
        # bits: the logit's 16-bit pattern in the high half of an int32, zeros below. Sign-magnitude to two's
        # complement (so -0 and +0 get the same key), then the expert code below.
        s = bits >> 31
        key = ((bits & 0x7FFF0000) ^ s) - s + low
        if HANDLE_NAN:  # NaN patterns lie above +inf's or below -inf's: give them -inf's key
            neg_inf = low - (NAN_FROM << 16)
            key = tl.where(key > (NAN_FROM << 16) + 0xFFFF, neg_inf, key)
            key = tl.maximum(key, neg_inf)
        return key

    @triton.jit
    def _compare_exchange(a, b):
        return tl.maximum(a, b), tl.minimum(a, b)

    @triton.jit
    def _lane_select(words_ptr, row_words, t, in_tokens, experts, TOPK: tl.constexpr, BLOCK_T: tl.constexpr,
                     G: tl.constexpr, EVEN_E: tl.constexpr, HANDLE_NAN: tl.constexpr, NAN_FROM: tl.constexpr):
        """Top-TOPK keys of each token, lane k holding the k-th; also the first and last picks."""
        L: tl.constexpr = 32
        LOWEST: tl.constexpr = -2147483648
        CODE: tl.constexpr = 32 * G - 1  # expert e is stored as CODE - e
        lane = tl.arange(0, L)
        row = words_ptr + t.to(tl.int64)[:, None] * row_words + lane[None, :]
        # Lane l holds words l, l + 32, l + 64, l + 96 (coalesced): word j holds experts 2(l + 32j) + {0, 1}.
        e = 2 * lane
        s0 = tl.full([BLOCK_T, L], LOWEST, tl.int32)
        s1 = s0
        s2 = s0
        s3 = s0
        s4 = s0
        s5 = s0
        s6 = s0
        s7 = s0
        for j in tl.static_range(G // 2):
            ok = in_tokens[:, None]
            if not EVEN_E:
                ok = ok & (e + 64 * j < experts)[None, :]
            w = tl.load(row + 32 * j, mask=ok, other=0)
            lo = _lane_key(w << 16, (CODE - 64 * j - e)[None, :], HANDLE_NAN, NAN_FROM)
            hi = _lane_key(w & -65536, (CODE - 1 - 64 * j - e)[None, :], HANDLE_NAN, NAN_FROM)
            if not EVEN_E:
                lo = tl.where(ok, lo, LOWEST)
                hi = tl.where(ok, hi, LOWEST)
            if j == 0:
                s0, s1 = lo, hi
            elif j == 1:
                s2, s3 = lo, hi
            elif j == 2:
                s4, s5 = lo, hi
            else:
                s6, s7 = lo, hi
        # Sort each lane's keys, largest first (the LOWEST slots of G < 8 fold away).
        if G == 2:
            s0, s1 = _compare_exchange(s0, s1)
        elif G == 4:
            s0, s1 = _compare_exchange(s0, s1)
            s2, s3 = _compare_exchange(s2, s3)
            s0, s2 = _compare_exchange(s0, s2)
            s1, s3 = _compare_exchange(s1, s3)
            s1, s2 = _compare_exchange(s1, s2)
        else:  # Batcher's merge-exchange network for 8 keys: 19 comparators
            s0, s1 = _compare_exchange(s0, s1)
            s2, s3 = _compare_exchange(s2, s3)
            s4, s5 = _compare_exchange(s4, s5)
            s6, s7 = _compare_exchange(s6, s7)
            s0, s2 = _compare_exchange(s0, s2)
            s1, s3 = _compare_exchange(s1, s3)
            s4, s6 = _compare_exchange(s4, s6)
            s5, s7 = _compare_exchange(s5, s7)
            s1, s2 = _compare_exchange(s1, s2)
            s5, s6 = _compare_exchange(s5, s6)
            s0, s4 = _compare_exchange(s0, s4)
            s3, s7 = _compare_exchange(s3, s7)
            s1, s5 = _compare_exchange(s1, s5)
            s2, s6 = _compare_exchange(s2, s6)
            s1, s4 = _compare_exchange(s1, s4)
            s3, s6 = _compare_exchange(s3, s6)
            s2, s4 = _compare_exchange(s2, s4)
            s3, s5 = _compare_exchange(s3, s5)
            s3, s4 = _compare_exchange(s3, s4)
        # K rounds: the largest head of the token wins and its lane pops; lane k records round k's pick.
        top = tl.full([BLOCK_T, L], LOWEST, tl.int32)
        first = tl.max(s0, axis=1)[:, None]
        best = first
        for k in tl.static_range(TOPK):
            if k > 0:
                best = tl.max(s0, axis=1)[:, None]
            top = tl.where(lane[None, :] == k, best, top)
            win = s0 == best  # keys are unique: one lane
            s0 = tl.where(win, s1, s0)
            s1 = tl.where(win, s2, s1)
            s2 = tl.where(win, s3, s2)
            s3 = tl.where(win, s4, s3)
            s4 = tl.where(win, s5, s4)
            s5 = tl.where(win, s6, s5)
            s6 = tl.where(win, s7, s6)
            s7 = tl.where(win, LOWEST, s7)
        return top, first, best

    @triton.jit
    def _lane_value(key, IS_BF16: tl.constexpr):
        ordered = key >> 16
        bits = tl.where(ordered < 0, (-ordered) | 0x8000, ordered)
        if IS_BF16:
            return (bits << 16).to(tl.float32, bitcast=True)
        return bits.to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)

    @triton.jit
    def _gemma4_route_lanes_kernel(gating_ptr, row_words, scale_ptr, weights_ptr, ids_ptr, padding_ptr, tokens,
                                   experts, TOPK: tl.constexpr, BLOCK_T: tl.constexpr, G: tl.constexpr,
                                   EVEN_E: tl.constexpr, NAN_FROM: tl.constexpr, IS_BF16: tl.constexpr,
                                   HAS_PADDING: tl.constexpr):
        # 16-bit logits, 32 lanes per token, G = E_padded / 32 experts per lane (2, 4 or 8).
        t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
        in_tokens = t < tokens
        words_ptr = gating_ptr.to(tl.pointer_type(tl.int32))
        top, first, last = _lane_select(words_ptr, row_words, t, in_tokens, experts, TOPK, BLOCK_T, G, EVEN_E,
                                        False, NAN_FROM)
        # Without the NaN rule a positive NaN outranks everything and a negative one ranks below -inf: the picks
        # are exact unless a NaN was picked or a pick reached -inf. Then redo this program's tokens with the rule.
        suspect = ((first > (NAN_FROM << 16) + 0xFFFF) | (last < 0x10000 - (NAN_FROM << 16))) & in_tokens[:, None]
        if tl.max(tl.max(suspect.to(tl.int32), axis=1), axis=0) > 0:
            top, first, last = _lane_select(words_ptr, row_words, t, in_tokens, experts, TOPK, BLOCK_T, G, EVEN_E,
                                            True, NAN_FROM)
        lane = tl.arange(0, 32)
        in_k = lane[None, :] < TOPK
        ids = 32 * G - 1 - (top & 0xFFFF)
        # softmax over the K picks (the first is their maximum), times the chosen experts' scales
        p = tl.where(in_k, tl.exp(_lane_value(top, IS_BF16) - _lane_value(first, IS_BF16)), 0.0)
        _store_routes(p, ids, t, in_tokens, in_k, lane, scale_ptr, weights_ptr, ids_ptr, padding_ptr, TOPK,
                      HAS_PADDING)


@dataclass(frozen=True)
class RouteTuning:
    """Geometry by token count, rows of (from this many tokens, tokens per program, warps), per kernel: from H200
    sweeps (tools/tune_gemma4.py, docs/BENCHMARKS.md). Every token is routed independently, so the geometry never
    changes results. use_lanes=False routes with the tile kernel where the lanes kernel would (for sweeps)."""

    lanes_geometry: tuple[tuple[int, int, int], ...] = ((0, 1, 1), (4096, 4, 1), (16384, 8, 1))
    tile_geometry: tuple[tuple[int, int, int], ...] = ((0, 1, 1), (4096, 4, 2))
    use_lanes: bool = True


DEFAULT_ROUTE_TUNING = RouteTuning()
_NAN_FROM = {torch.bfloat16: 0x7F80, torch.float16: 0x7C00}  # magnitudes above these bit patterns are NaN


def _geometry(table: tuple[tuple[int, int, int], ...], tokens: int) -> tuple[int, int]:
    _, block_t, warps = [row for row in table if tokens >= row[0]][-1]
    return block_t, warps


def lanes_kernel_takes(gating_output: torch.Tensor, topk: int) -> bool:
    """Whether the sorted-lanes kernel can route these logits (else the [BLOCK_T, E] tile kernel does)."""
    experts = gating_output.shape[1]
    return (gating_output.dtype in _NAN_FROM and 32 < experts <= 256 and experts % 2 == 0 and topk <= 32
            and gating_output.stride(0) % 2 == 0 and gating_output.data_ptr() % 4 == 0)


def gemma4_route(gating_output: torch.Tensor, per_expert_scale: torch.Tensor, topk: int,
                 is_padding: torch.Tensor | None = None, *,
                 tuning: RouteTuning = DEFAULT_ROUTE_TUNING) -> tuple[torch.Tensor, torch.Tensor]:
    """Route every token to its top-k experts. See the module docstring for the contract."""
    if unsupported_reason(gating_output, per_expert_scale, is_padding, topk) is not None:
        return gemma4_route_reference(gating_output, per_expert_scale, topk, is_padding)
    return run_gemma4_route(gating_output, per_expert_scale, topk, is_padding, tuning=tuning)


def run_gemma4_route(gating_output: torch.Tensor, per_expert_scale: torch.Tensor, topk: int,
                     is_padding: torch.Tensor | None = None, *,
                     tuning: RouteTuning = DEFAULT_ROUTE_TUNING) -> tuple[torch.Tensor, torch.Tensor]:
    """The routing kernels on inputs they take (`unsupported_reason(gating_output, per_expert_scale, is_padding)`
    is None)."""
    _check_contract(gating_output, per_expert_scale, topk, is_padding)
    tokens, experts = gating_output.shape
    weights = torch.empty((tokens, topk), dtype=torch.float32, device=gating_output.device)
    ids = torch.empty((tokens, topk), dtype=torch.int32, device=gating_output.device)
    if tokens == 0:
        return weights, ids
    lanes = tuning.use_lanes and lanes_kernel_takes(gating_output, topk)
    padding = is_padding if is_padding is not None else ids  # (an unread placeholder without padding)
    if gating_output.device.type == "cpu":  # the interpreter runs programs one by one: fewer, larger ones
        block_t, warps = 16, 4
    else:
        block_t, warps = _geometry(tuning.lanes_geometry if lanes else tuning.tile_geometry, tokens)
    if lanes:
        padded = triton.next_power_of_2(experts)
        _gemma4_route_lanes_kernel[(triton.cdiv(tokens, block_t),)](
            gating_output, gating_output.stride(0) // 2, per_expert_scale, weights, ids, padding, tokens, experts,
            TOPK=topk, BLOCK_T=block_t, G=padded // 32, EVEN_E=padded == experts,
            NAN_FROM=_NAN_FROM[gating_output.dtype], IS_BF16=gating_output.dtype == torch.bfloat16,
            HAS_PADDING=is_padding is not None, num_warps=warps)
        return weights, ids
    _gemma4_route_kernel[(triton.cdiv(tokens, block_t),)](
        gating_output, gating_output.stride(0), per_expert_scale, weights, ids, padding, tokens, experts,
        TOPK=topk, TOPK_P2=triton.next_power_of_2(topk), BLOCK_T=block_t,
        BLOCK_E=triton.next_power_of_2(experts), KEY_BITS=32 if gating_output.element_size() == 2 else 64,
        NAN_FROM=_NAN_FROM.get(gating_output.dtype, 0), HAS_PADDING=is_padding is not None, num_warps=warps)
    return weights, ids
