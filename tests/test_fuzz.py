"""Bad input everywhere, fuzzed with hypothesis: the flag parser and every kernel wrapper.

Flags: any text in any hotfuse variable gives either a valid flag set or one clear error naming the valid
fusions (and then nothing is on) - never an exception. Kernels: any dtype, shape (empty included), stride,
NaN / inf / huge values either raise a clear ValueError / TypeError or give the reference's answer under
the same rule the safety nets use (hotfuse.kernels.checks) - never a crash, never a silently wrong output.
Kernels run through Triton's interpreter on CPU.
"""

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotfuse.flags import ENV_ALLOW_DRIFT, ENV_DISABLE, ENV_ENABLE, ENV_SHADOW, ENV_SHADOW_TRIP, ENV_VERIFY, Mode, \
    parse_flags
from hotfuse.kernels import checks
from hotfuse.registry import FUSION_NAMES

WORDS = list(FUSION_NAMES) + ["1", "all", "0", "", " ", "ALL", "Sampler", "bogus", ",", "true", "nan", "-1", "0.5",
                              "2", "1e-3", "inf"]
flag_text = st.lists(st.sampled_from(WORDS), max_size=4).map(",".join) | st.text(max_size=12)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.dictionaries(st.sampled_from([ENV_ENABLE, ENV_DISABLE, ENV_ALLOW_DRIFT, ENV_VERIFY, ENV_SHADOW,
                                        ENV_SHADOW_TRIP]), flag_text))
def test_flag_parser_never_raises_and_never_half_applies(env):
    flags = parse_flags(env)
    if flags.error:
        assert flags.inert and all(flags.mode(n) is Mode.OFF for n in FUSION_NAMES)
        assert all(n in flags.error for n in FUSION_NAMES), "the error names the valid fusions"
        return
    assert 0.0 <= flags.shadow <= 1.0 and flags.shadow_trip >= 1
    disabled = {w.strip().lower() for w in env.get(ENV_DISABLE, "").split(",")}
    for name in FUSION_NAMES:
        if not flags.inert and (name in disabled or disabled & {"1", "all"}):
            assert flags.mode(name) is Mode.REFERENCE


SPECIAL = st.sampled_from([0.0, 1.0, -1.0, float("nan"), float("inf"), float("-inf"), 1e30, -1e30, 65504.0])
DTYPES = st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.bool])


@st.composite
def matrices(draw, max_rows=5, max_cols=70):
    rows, cols = draw(st.integers(0, max_rows)), draw(st.integers(0, max_cols))
    dtype = draw(DTYPES)
    seed = draw(st.integers(0, 2**31 - 1))
    x = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * draw(st.sampled_from([1.0, 50.0]))
    for _ in range(draw(st.integers(0, 3))):
        if rows and cols:
            x[draw(st.integers(0, rows - 1)), draw(st.integers(0, cols - 1))] = draw(SPECIAL)
    x = x.to(dtype) if dtype is not torch.bool else x > 0
    if draw(st.booleans()) and cols > 1:
        x = x[:, ::2]  # non-contiguous rows
    return x


def outcome(check, args):
    """The answer a call through hotfuse.safety gives (the kernel for inputs it takes, the reference for the rest),
    judged by its check's rule; or the clear error it raised."""
    try:
        out = check.fused(*args) if check.unsupported(*args) is None else check.reference(*args)
    except (ValueError, TypeError) as exc:
        assert str(exc), "an error must say what is wrong"
        return
    ref = check.reference(*[a.clone() if isinstance(a, torch.Tensor) else a for a in args])
    assert check.error(out, ref, args) <= check.tolerance(args), "silently wrong output"


def finite_rows(x):
    return x.shape[0] == 0 or x.shape[1] == 0 or bool(torch.isfinite(x.float()).any(-1).all())


@SETTINGS
@given(matrices(), st.sampled_from([0.05, 0.7, 1.0, 30.0]))
def test_temperature_softmax_inputs(x, t):
    temps = torch.full((x.shape[0],), t)
    if x.is_floating_point() and (not finite_rows(x) or torch.isnan(x).any() or torch.isposinf(x).any()):
        # no distribution (no finite logit), or NaN / +inf logits: outside temperature_softmax's contract (the
        # engines screen NaN logits before sampling); the sampling kernel's rule for them is fuzzed below
        return
    outcome(checks.SOFTMAX, (x.clone(), temps))


@SETTINGS
@given(matrices(), st.sampled_from([0.3, 1.0]))
def test_temperature_sample_inputs(x, t):
    if x.is_floating_point() and (not finite_rows(x) or torch.isposinf(x).any()):
        return  # no distribution, or +inf logits: outside the contract (NaN logits are in it: never drawn)
    outcome(checks.SAMPLE, (x, torch.full((x.shape[0],), t), torch.arange(x.shape[0])))


@SETTINGS
@given(matrices(max_cols=40), st.integers(1, 8))
def test_gemma4_route_inputs(x, k):
    scale = torch.rand(x.shape[1]) + 0.5
    if x.is_floating_point() and (torch.isnan(x).any() or not finite_rows(x)):
        return  # NaN / all -inf rows: planted in tests/kernels/test_gemma4_router.py with their exact rule
    outcome(checks.ROUTE, (x, scale, k))


@SETTINGS
@given(st.integers(0, 40), st.sampled_from([torch.int32, torch.int64, torch.float32]), st.booleans(),
       st.integers(-3, 45), st.booleans())
def test_topk_postprocess_inputs(t, dtype, with_table, n, strided):
    ids = torch.randint(-1, 16, (t, 8)).to(dtype)
    if strided:
        ids = ids[:, ::2]
    table = torch.randperm(16).to(torch.int32) if with_table else None
    outcome(checks.TOPK, (ids, table, torch.tensor(n)))


@SETTINGS
@given(st.integers(0, 20), st.sampled_from([torch.int64, torch.int32, torch.float32]),
       st.lists(st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.uint8, None]),
                min_size=1, max_size=7), st.booleans())
def test_gather_rows_inputs(b, index_dtype, dtypes, strided):
    indices = torch.randint(0, 10, (b * 2 if strided else b,)).to(index_dtype)
    if strided:
        indices = indices[::2]
    buffers = [None if d is None else torch.randint(0, 100, (10, 3)).to(d) for d in dtypes]
    outcome(checks.GATHER, (indices, *buffers))
