"""Sampler kernels on a real CUDA GPU (run on the device machine: `bash ci/gpu_run.sh OUT`)."""

from dataclasses import replace

import pytest
import torch

from gpu.cuda_graphs import capture
from hotfuse.kernels import KERNEL_FAILURES, sampling
from hotfuse.kernels.sampling import plan, temperature_sample, temperature_softmax
from hotfuse.kernels.sampling.plan import DEFAULT_TUNING, ENTRY_WAIT_KERNELS
from kernels.test_sampling import PLAN, softmax_tuning

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (device machine only)")]

# max |p - p_ref| against a float64 reference, by logits dtype (probabilities are written in that dtype).
# A low temperature scales logits up (5 sigma / 0.05 = 100), where fp32 rounding of x / t alone moves the
# exponent by ~1e-5: the bound is then "no worse than twice torch's own softmax(x / t) in that dtype".
TOLERANCE = {torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 8e-3}


def allowed_error(logits, temps, ref):
    t = temps.reshape(-1, 1).to(torch.float32)
    torch_err = (torch.softmax(logits.float() / t, dim=-1).to(logits.dtype).double() - ref).abs().max().item()
    return max(TOLERANCE[logits.dtype], 2 * torch_err)
SHAPES = [(1, 128256), (4, 262144), (16, 128256), (64, 32000), (256, 4099), (3, 1), (7, 1000), (0, 128),
          (300, 262144), (33, 600000), (5, 524288)]


@pytest.fixture(autouse=True)
def fresh(fresh_hotfuse):
    """No kernel failures recorded by an earlier test (tests/conftest.py)."""


@pytest.fixture(params=["cluster", "two_pass"])
def softmax_path(request):
    """Run each softmax test through both kernels: the cluster single launch (at every batch size, not only where
    the plan picks it; vocabularies outside its spans still take the two-pass kernels) and the two-pass split.
    Yields the tuning that makes the plan take it."""
    yield softmax_tuning(request.param)
    assert not KERNEL_FAILURES.failed(plan.CLUSTER_SOFTMAX), "the cluster kernel failed and fell back"


def inputs(b, v, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    logits = (torch.randn(b, v, device="cuda", generator=g) * 5).to(dtype)
    temps = torch.rand(b, device="cuda", generator=g) * 2 + 0.05
    return logits, temps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("b, v", SHAPES)
def test_softmax_matches_float64_reference(dtype, b, v, softmax_path):
    logits, temps = inputs(b, v, dtype, seed=b * 31 + v)
    if b and v > 8:
        logits[0, : v // 3] = float("-inf")  # masked vocabulary
    out = torch.full_like(logits, float("nan"))  # poison: every element must be written
    assert sampling.unsupported_reason(logits, temps, out) is None, "the kernels take these inputs"
    got = temperature_softmax(logits, temps, out=out, tuning=softmax_path)
    ref = torch.softmax(logits.double() / temps.double()[:, None], dim=-1)
    assert not torch.isnan(got).any()
    if got.numel():
        assert (got.double() - ref).abs().max().item() <= allowed_error(logits, temps, ref)


@pytest.mark.parametrize("temperature", [1e-4, 1e-2, 1.0, 100.0, 1e4])
def test_extreme_temperatures(temperature, softmax_path):
    logits, _ = inputs(8, 50000, torch.float32, seed=5)
    temps = torch.full((8, 1), temperature, device="cuda")
    got = temperature_softmax(logits, temps, tuning=softmax_path)
    ref = torch.softmax(logits.double() / temperature, dim=-1)
    assert (got.double() - ref).abs().max().item() <= allowed_error(logits, temps, ref)


def test_in_place_aliases_logits(softmax_path):
    logits, temps = inputs(5, 70000, torch.float32, seed=9)
    ref = torch.softmax(logits.double() / temps.double()[:, None], dim=-1)
    expected_err = allowed_error(logits, temps, ref)
    result = temperature_softmax(logits, temps, out=logits, tuning=softmax_path)
    assert result is logits
    assert (logits.double() - ref).abs().max().item() <= expected_err


@pytest.mark.parametrize("b, v", [(1, 262144), (64, 128256), (256, 128256)])
def test_bitwise_repeatable_and_graph_capturable(b, v, softmax_path):
    logits, temps = inputs(b, v, torch.float32, seed=11)
    seeds = torch.arange(b, dtype=torch.int64, device="cuda") * 1000003
    tuning = softmax_path
    first = temperature_softmax(logits, temps, tuning=tuning)
    tokens = temperature_sample(logits, temps, seeds)
    for _ in range(3):
        assert torch.equal(temperature_softmax(logits, temps, tuning=tuning), first)
        assert torch.equal(temperature_sample(logits, temps, seeds), tokens)
    probs_out = torch.empty_like(logits)
    graph, (_, graph_tokens) = capture(lambda: (temperature_softmax(logits, temps, out=probs_out, tuning=tuning),
                                                temperature_sample(logits, temps, seeds)))
    fresh, _ = inputs(b, v, torch.float32, seed=12)
    logits.copy_(fresh)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(probs_out, temperature_softmax(fresh, temps, tuning=tuning))
    assert torch.equal(graph_tokens, temperature_sample(fresh, temps, seeds))


DEPENDENCY_SETTINGS = {"shipped": {"entry_wait": DEFAULT_TUNING.entry_wait,
                                   "trigger_next": DEFAULT_TUNING.trigger_next},
                       "off": {"entry_wait": frozenset(), "trigger_next": False},
                       "every kernel waits and triggers": {"entry_wait": frozenset(ENTRY_WAIT_KERNELS),
                                                           "trigger_next": True}}


@pytest.mark.parametrize("setting", DEPENDENCY_SETTINGS)
@pytest.mark.parametrize("b, v", [(4, 262144), (16, 128256), (1, 128256)])
def test_dependent_launches_see_the_writes_of_the_kernels_before_them_in_a_graph(b, v, setting, softmax_path):
    """In one graph, three rounds of: a torch kernel writes fresh logits, the in-place softmax, a torch kernel
    writes other logits, the sampler, then the softmax again right behind the sampler. Every kernel that launches
    as a programmatic dependent must read what the kernel before it wrote, replay after replay."""
    tuning = replace(softmax_path, **DEPENDENCY_SETTINGS[setting])
    temps = torch.rand(b, device="cuda") + 0.5
    seeds = torch.arange(b, dtype=torch.int64, device="cuda") * 7 + 1
    sources = [inputs(b, v, torch.float32, seed=100 + i)[0] for i in range(6)]
    work = [torch.empty(b, v, device="cuda") for _ in range(6)]

    def rounds():
        tokens = []
        for i in range(3):
            work[2 * i].copy_(sources[2 * i])
            temperature_softmax(work[2 * i], temps, out=work[2 * i], tuning=tuning)
            work[2 * i + 1].copy_(sources[2 * i + 1])
            tokens.append(temperature_sample(work[2 * i + 1], temps, seeds, tuning=tuning))
            temperature_softmax(work[2 * i + 1], temps, out=work[2 * i + 1], tuning=tuning)
        return tokens

    graph, tokens = capture(rounds)
    expected_probs = [temperature_softmax(src, temps, tuning=tuning) for src in sources]
    expected_tokens = [temperature_sample(sources[2 * i + 1], temps, seeds, tuning=tuning) for i in range(3)]
    for replay in range(3):
        for w in work:
            w.fill_(float("nan"))
        if replay:  # new logits between replays: the graph's copies must bring them in
            for src in sources:
                src.copy_(torch.roll(src, shifts=replay * 17, dims=1))
            expected_probs = [temperature_softmax(src, temps, tuning=tuning) for src in sources]
            expected_tokens = [temperature_sample(sources[2 * i + 1], temps, seeds, tuning=tuning) for i in range(3)]
        graph.replay()
        torch.cuda.synchronize()
        for w, expected in zip(work, expected_probs):
            assert torch.equal(w, expected)
        for got, expected in zip(tokens, expected_tokens):
            assert torch.equal(got, expected)


def chi_square(counts, base, temperature):
    """Pearson's statistic of class counts against softmax(base / temperature)."""
    expected = torch.softmax(base.double() / temperature, -1) * counts.sum()
    return (((counts - expected) ** 2) / expected).sum().item()


def test_sample_follows_the_softmax_distribution_chi_square():
    # V = 12: one partial tile, every column holds at most one token. The next test spreads the
    # distribution over many tiles and programs, where columns hold tokens of several classes.
    v, n, temperature = 12, 200000, 0.7
    base = torch.linspace(-2, 2, v, device="cuda")
    logits = base.expand(n, v).contiguous()
    tokens = temperature_sample(logits, torch.full((n,), temperature, device="cuda"),
                                torch.arange(n, device="cuda", dtype=torch.int64))
    counts = torch.bincount(tokens, minlength=v).double()
    assert chi_square(counts, base, temperature) < 31.26  # df = 11, p = 0.001
    assert chi_square(counts, base, temperature * 1.1) > 100.0


def test_sample_over_many_chunks_chi_square():
    # 24 classes: a column (tokens 512 apart) holds several classes, so both races decide the class
    k, v, n, temperature = 24, 24 * 10000, 20000, 0.9
    base = torch.linspace(-1.0, 1.0, k, device="cuda")
    logits = base.repeat(v // k).expand(n, v).contiguous()  # token i has logit base[i % k]
    tokens = temperature_sample(logits, torch.full((n,), temperature, device="cuda"),
                                torch.arange(n, device="cuda", dtype=torch.int64) + 77)
    counts = torch.bincount(tokens % k, minlength=k).double()
    assert chi_square(counts, base, temperature) < 49.73  # df = 23, p = 0.001
    assert chi_square(counts, base, temperature * 1.3) > 100.0


def test_sample_all_but_one_masked_picks_it():
    logits = torch.full((4, 300000), float("-inf"), device="cuda")
    logits[torch.arange(4), torch.tensor([0, 299999, 150001, 7])] = 0.0
    tokens = temperature_sample(logits, torch.ones(4, device="cuda"), torch.arange(4, device="cuda"))
    assert tokens.tolist() == [0, 299999, 150001, 7]


@pytest.mark.parametrize("b, v", [(16, 128256), (64, 262144), (300, 5000)])
def test_one_launch_sampling_equals_two_launches_and_replays_in_a_graph(b, v):
    from hotfuse.kernels.sampling.race import zeroed_counters

    one_launch = replace(DEFAULT_TUNING, cluster_race=None, one_launch_sampling=True)  # the column race kernel
    logits, temps = inputs(b, v, torch.float32, seed=b + v)
    seeds = torch.arange(b, device="cuda", dtype=torch.int64) * 3 + 1
    expected = temperature_sample(logits, temps, seeds, tuning=replace(one_launch, one_launch_sampling=False))
    for _ in range(3):  # the arrival counters are reused launch after launch
        assert torch.equal(temperature_sample(logits, temps, seeds, tuning=one_launch), expected)
    graph, captured = capture(lambda: temperature_sample(logits, temps, seeds, tuning=one_launch))
    for _ in range(3):
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(captured, expected)
    assert not zeroed_counters(logits.device, b).any()


@pytest.mark.parametrize("b, v", [(2, 128256), (5, 70001), (16, 128256), (16, 131072)])
def test_the_cluster_race_draws_the_tokens_of_the_column_race_and_replays_in_a_graph(b, v):
    logits, temps = inputs(b, v, torch.float32, seed=b * v)
    logits *= 0.1  # flat rows: every column is in the running
    logits[0, : v // 3] = float("-inf")
    logits[-1, 100::997] = float("nan")
    seeds = torch.arange(b, device="cuda", dtype=torch.int64) * 5 + 9
    assert plan.cluster_race_geometry(b, v, logits.dtype, logits.device) is not None
    cluster = [temperature_sample(logits, temps, seeds + k) for k in range(4)]
    graph, captured = capture(lambda: temperature_sample(logits, temps, seeds))
    assert not KERNEL_FAILURES.failed(plan.CLUSTER_RACE), "the cluster race failed here and fell back"
    no_cluster = replace(DEFAULT_TUNING, cluster_race=None)
    race = [temperature_sample(logits, temps, seeds + k, tuning=no_cluster) for k in range(4)]
    assert all(torch.equal(a, r) for a, r in zip(cluster, race))
    assert len({tuple(t.tolist()) for t in cluster}) > 1
    fresh, _ = inputs(b, v, torch.float32, seed=b * v + 1)
    for _ in range(3):  # replays on fresh logits, copied into the captured input
        logits.copy_(fresh)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(captured, temperature_sample(logits, temps, seeds))


def test_a_rows_token_depends_on_neither_its_batch_nor_the_program_length():
    b, v = 64, 262144  # the plan gives 4 tiles a program here, 1 for a row alone
    logits, temps = inputs(b, v, torch.float32, seed=5)
    logits *= 0.1  # flat rows: the column race and the race inside the column both matter
    seeds = torch.arange(b, device="cuda", dtype=torch.int64) * 7 + 3
    batch = temperature_sample(logits, temps, seeds)
    assert sampling.sample_plan(b, v, logits.device).tiles_per_program == 4
    alone = torch.cat([temperature_sample(logits[i:i + 1], temps[i:i + 1], seeds[i:i + 1]) for i in range(b)])
    assert torch.equal(batch, alone)
    for tiles in (1, 2, 3):
        tuning = replace(DEFAULT_TUNING, sample_max_tiles_per_program=tiles)
        assert torch.equal(temperature_sample(logits, temps, seeds, tuning=tuning), batch)
    # 16 rows of 128256 tokens are drawn by the cluster race, 64 by the column race
    logits, temps = inputs(b, 128256, torch.float32, seed=6)
    logits *= 0.1
    assert plan.cluster_race_geometry(16, 128256, logits.dtype, logits.device) is not None
    assert plan.cluster_race_geometry(b, 128256, logits.dtype, logits.device) is None
    assert torch.equal(temperature_sample(logits[:16], temps[:16], seeds[:16]),
                       temperature_sample(logits, temps, seeds)[:16])


def test_nan_logits_are_drawn_as_if_masked():
    logits, temps = inputs(8, 128256, torch.float32, seed=9)
    g = torch.Generator(device="cuda").manual_seed(9)
    logits[0, ::3] = float("nan")
    logits[1, torch.randint(0, 128256, (100,), device="cuda", generator=g)] = float("nan")
    logits[2, 8192:] = float("nan")
    seeds = torch.arange(8, device="cuda", dtype=torch.int64)
    got = temperature_sample(logits, temps, seeds)
    assert not torch.isnan(logits[torch.arange(8, device="cuda"), got]).any()
    assert torch.equal(got, temperature_sample(logits.nan_to_num(nan=float("-inf")), temps, seeds))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits_draw_what_their_fp32_values_draw(dtype):
    logits, temps = inputs(16, 128256, dtype, seed=4)
    seeds = torch.arange(16, device="cuda", dtype=torch.int64) + 100
    assert torch.equal(temperature_sample(logits, temps, seeds), temperature_sample(logits.float(), temps, seeds))


def test_the_plan_takes_the_cluster_kernel_where_it_wins_and_it_runs_here():
    device = torch.device("cuda")
    assert {shape: sampling.softmax_variant(*shape, device)[0] for shape in PLAN} == PLAN
    logits, temps = inputs(64, 262144, torch.float32, seed=2)
    ref = torch.softmax(logits.double() / temps.double()[:, None], dim=-1)
    assert (temperature_softmax(logits, temps).double() - ref).abs().max().item() <= TOLERANCE[torch.float32]
    assert not KERNEL_FAILURES.failed(plan.CLUSTER_SOFTMAX), "the cluster kernel failed here and fell back"


def test_warm_up_leaves_nothing_to_compile_for_any_batch_size(monkeypatch):
    """After warm_up, no batch size up to max_rows makes Triton compile (or load) a kernel on a request."""
    import triton

    compiled = []

    def hook(*args, **kwargs):
        compiled.append(kwargs.get("repr", args))
        return False  # go on compiling

    monkeypatch.setattr(triton.knobs.runtime, "jit_cache_hook", hook)
    # A row stride that is not a multiple of 16 over a vocabulary this wide: no other test compiled these variants.
    vocab = 151_937
    temperature_softmax(torch.randn(4, vocab, device="cuda").half(), torch.ones(4, device="cuda"))
    assert compiled, "the hook sees compiles"
    assert sampling.warm_up(torch.empty(2, vocab, device="cuda", dtype=torch.bfloat16), max_rows=512)
    compiled.clear()
    for b in (1, 2, 3, 7, 16, 31, 64, 100, 128, 255, 256, 512):
        logits = torch.randn(b, vocab, device="cuda").to(torch.bfloat16)
        temps = torch.rand(b, device="cuda") + 0.5
        temperature_sample(logits, temps, torch.arange(b, device="cuda"))
        temperature_softmax(logits, temps, out=logits)
    # fp32 logits in the cluster race's range (with a row stride not a multiple of 16 either)
    vocab = 100_003
    assert sampling.warm_up(torch.empty(2, vocab, device="cuda"), max_rows=64)
    compiled.clear()
    for b in (1, 2, 5, 16, 17, 64):
        logits = torch.randn(b, vocab, device="cuda")
        temperature_sample(logits, torch.rand(b, device="cuda") + 0.5, torch.arange(b, device="cuda"))
    torch.cuda.synchronize()
    assert compiled == []
    assert not KERNEL_FAILURES.failed(plan.CLUSTER_RACE)
