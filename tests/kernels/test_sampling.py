"""temperature_softmax / temperature_sample against their torch references, through the Triton interpreter."""

import math
from dataclasses import replace

import pytest
import torch

from hotfuse.kernels import KERNEL_FAILURES, sampling
from hotfuse.kernels.sampling import plan, temperature_sample, temperature_softmax
from hotfuse.kernels.sampling.plan import DEFAULT_TUNING, ClusterSoftmax

# max |p - p_ref| against a float64 reference, by logits dtype (bf16 is broken in the interpreter: GPU suite)
TOLERANCE = {torch.float32: 1e-6, torch.float16: 1e-3}


@pytest.fixture(autouse=True)
def fresh(fresh_hotfuse):
    """No kernel failures recorded by an earlier test (tests/conftest.py)."""


def reference(logits, temps):
    return torch.softmax(logits.double() / temps.double().reshape(-1, 1), dim=-1)


def softmax_tuning(kernel, **cluster):
    """A tuning whose plan takes `kernel`: the two-pass kernels, or the cluster kernel at every batch size (and with
    the ClusterSoftmax fields given, e.g. min_span=1 for every vocabulary)."""
    if kernel == "two_pass":
        return replace(DEFAULT_TUNING, cluster_softmax=None)
    table = ClusterSoftmax(**dict(short_span_min_rows=1, long_span_min_rows=1, long_span_min_elements=0, **cluster))
    return replace(DEFAULT_TUNING, cluster_softmax=table)


@pytest.fixture(params=["cluster", "two_pass"])
def softmax_kernel(request):
    """Run a softmax test through both kernels: the cluster kernel (here at every shape: the interpreter runs a
    cluster as one program) and the two-pass split. Yields (kernel, tuning)."""
    yield request.param, softmax_tuning(request.param, min_span=1)
    assert not KERNEL_FAILURES.failed(plan.CLUSTER_SOFTMAX), "the cluster kernel failed and fell back"


def runs(kernel, logits, tuning=DEFAULT_TUNING):
    return sampling.softmax_variant(*logits.shape, logits.device, tuning)[0] == kernel


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("b, v", [(1, 1), (1, 4099), (3, 20000), (5, 257), (2, 70001)])
def test_softmax_matches_reference(dtype, b, v, softmax_kernel):
    kernel, tuning = softmax_kernel
    g = torch.Generator().manual_seed(b * 1000 + v)
    logits = (torch.randn(b, v, generator=g) * 6).to(dtype)
    assert runs(kernel, logits, tuning)
    temps = torch.rand(b, 1, generator=g) * 2 + 0.05
    out = torch.full_like(logits, float("nan"))  # poisoned: every element must be written
    assert sampling.unsupported_reason(logits, temps, out) is None, "the kernels take these inputs"
    got = temperature_softmax(logits, temps, out=out, tuning=tuning)
    assert got is out and not torch.isnan(got).any()
    assert (got.double() - reference(logits, temps)).abs().max().item() <= TOLERANCE[dtype]


def test_softmax_several_chunks_per_row_combine_exactly():
    logits = torch.randn(2, 9000)
    plan = sampling.softmax_plan(2, 9000, logits.device)
    assert plan.chunks > 1, "the test must exercise the cross-chunk combine"
    got = temperature_softmax(logits, torch.ones(2))
    assert torch.allclose(got.double().sum(-1), torch.ones(2, dtype=torch.float64), atol=1e-6)


def test_masked_vocabulary_and_all_masked_rows(softmax_kernel):
    kernel, tuning = softmax_kernel
    logits = torch.randn(3, 5000)
    assert runs(kernel, logits, tuning)
    logits[0, :4000] = float("-inf")      # most of the vocabulary masked
    logits[1, 1234] = 50.0               # one dominant logit
    logits[2, :] = float("-inf")          # nothing left: torch gives NaN, so must we
    temps = torch.tensor([0.7, 1.0, 1.3])
    got = temperature_softmax(logits, temps, tuning=tuning)
    ref = reference(logits, temps)
    assert (got[:2].double() - ref[:2]).abs().max().item() <= 1e-6
    assert (got[0, :4000] == 0).all()
    assert torch.isnan(got[2]).all() and torch.isnan(ref[2]).all()


@pytest.mark.parametrize("temperature", [1e-4, 1e-2, 1.0, 100.0, 1e4])
def test_tiny_and_huge_temperatures(temperature, softmax_kernel):
    kernel, tuning = softmax_kernel
    logits = torch.randn(2, 3000, generator=torch.Generator().manual_seed(30)) * 10
    assert runs(kernel, logits, tuning)
    temps = torch.full((2,), temperature)
    got = temperature_softmax(logits, temps, tuning=tuning)
    ref = reference(logits, temps)
    # At t = 0.01, x / t reaches ~4000, where fp32 rounding of x / t alone moves a probability by ~1e-5:
    # the bound is then "no worse than twice torch's own fp32 softmax(x / t)" (seed 30 is such a case).
    torch_error = (torch.softmax(logits / temps.reshape(-1, 1), -1).double() - ref).abs().max().item()
    assert (got.double() - ref).abs().max().item() <= max(1e-6, 2 * torch_error)


def test_in_place_when_out_is_logits(softmax_kernel):
    kernel, tuning = softmax_kernel
    logits = torch.randn(4, 6000)
    assert runs(kernel, logits, tuning)
    temps = torch.rand(4) + 0.5
    ref = reference(logits, temps)
    assert temperature_softmax(logits, temps, out=logits, tuning=tuning) is logits
    assert (logits.double() - ref).abs().max().item() <= 1e-6


# Which softmax kernel the plan takes, from the H200 sweep (docs/experiments/2026-11-22-dependent-launch-cluster-sweep.json): the
# cluster kernel where it was faster there, the two-pass kernels where they were.
PLAN = {(1, 128256): "two_pass", (2, 128256): "two_pass", (3, 128256): "two_pass", (4, 128256): "cluster",
        (16, 128256): "cluster", (256, 128256): "cluster", (16, 32000): "cluster", (1, 32000): "cluster",
        (1, 65536): "cluster", (1, 65537): "two_pass", (3, 65537): "two_pass", (4, 65537): "cluster",
        (4, 4099): "two_pass", (64, 151936): "two_pass",
        (128, 151936): "cluster", (16, 262144): "two_pass", (32, 262144): "two_pass", (64, 262144): "cluster",
        (32, 524288): "two_pass", (64, 524288): "cluster", (64, 600000): "two_pass", (8, 16384): "two_pass",
        (8, 16385): "cluster", (1, 16385): "cluster"}


def test_the_plan_takes_the_cluster_kernel_where_it_was_faster():
    device = torch.device("cpu")  # the interpreter follows the GPU's plan
    assert {shape: sampling.softmax_variant(*shape, device)[0] for shape in PLAN} == PLAN


def test_a_masked_span_and_every_span_combine_in_the_cluster_kernel():
    tuning = replace(DEFAULT_TUNING, cluster_softmax=ClusterSoftmax(min_span=1))
    # seeded: at t = 0.01 fp32 itself misses 1e-6 on a few inputs (2 seeds of 150, where torch's own fp32 softmax
    # was off by as much as the kernel or more)
    logits = torch.randn(4, 20000, generator=torch.Generator().manual_seed(0)) * 8
    logits[0, :18000] = float("-inf")   # most spans of row 0 hold no mass
    logits[1, 19999] = 80.0             # one span holds nearly all of row 1's mass
    temps = torch.tensor([0.5, 1.0, 2.0, 0.01])
    assert runs("cluster", logits, tuning)
    got = temperature_softmax(logits, temps, tuning=tuning)
    assert (got.double() - reference(logits, temps)).abs().max().item() <= 1e-6
    assert (got[0, :18000] == 0).all()


def test_a_cluster_kernel_that_fails_falls_back_to_the_two_pass_kernels_once(monkeypatch):
    from hotfuse.kernels.sampling import softmax

    tuning = replace(DEFAULT_TUNING, cluster_softmax=ClusterSoftmax(min_span=1))
    calls = []

    def broken(*args):
        calls.append(args)
        raise RuntimeError("cluster launch refused")

    monkeypatch.setattr(softmax, "_launch_cluster", broken)
    logits, temps = torch.randn(4, 3000), torch.rand(4) + 0.5
    assert sampling.softmax_variant(4, 3000, logits.device, tuning)[0] == "cluster"
    for _ in range(2):
        got = temperature_softmax(logits, temps, tuning=tuning)
        assert (got.double() - reference(logits, temps)).abs().max().item() <= 1e-6
    assert len(calls) == 1
    assert KERNEL_FAILURES.snapshot() == {
        "softmax_cluster": "RuntimeError: cluster launch refused; the two-pass softmax kernels from now on"}
    assert sampling.softmax_variant(4, 3000, logits.device, tuning)[0] == "two_pass"


def test_empty_batch():
    got = temperature_softmax(torch.empty(0, 128), torch.empty(0))
    assert got.shape == (0, 128)
    assert temperature_sample(torch.empty(0, 128), torch.empty(0), torch.empty(0, dtype=torch.int64)).shape == (0,)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: (torch.randn(3, 100, dtype=torch.float64), torch.ones(3)), "dtype=float64"),
        (lambda: (torch.randn(100, 3).t(), torch.ones(3)), "non-contiguous rows"),
        (lambda: (torch.randn(3, 100, dtype=torch.bfloat16), torch.ones(3)), "dtype=bfloat16 under the Triton interpreter"),
    ],
)
def test_unhandled_inputs_fall_back_to_the_reference_with_a_reason(make, reason):
    logits, temps = make()
    assert sampling.unsupported_reason(logits, temps) == reason  # what hotfuse.safety counts the fallback under
    got = temperature_softmax(logits, temps)
    ref = torch.softmax(logits.float() / temps.reshape(-1, 1).float(), dim=-1)
    assert got.dtype == logits.dtype and torch.allclose(got.float(), ref, atol=1e-2)


@pytest.mark.parametrize("logits, temps", [(torch.randn(2, 3, 4), torch.ones(2)), (torch.randn(3, 100), torch.ones(2))])
def test_inputs_outside_the_contract_raise_clearly(logits, temps):
    with pytest.raises(ValueError):
        temperature_softmax(logits, temps)
    with pytest.raises(ValueError):
        temperature_sample(logits, temps, torch.zeros(logits.shape[0], dtype=torch.int64))


def test_sample_is_deterministic_for_given_seeds_and_differs_across_seeds():
    logits = torch.randn(6, 5000)
    temps = torch.ones(6)
    seeds = torch.arange(6, dtype=torch.int64) * 7
    a = temperature_sample(logits, temps, seeds)
    assert torch.equal(a, temperature_sample(logits, temps, seeds))
    assert a.dtype == torch.int64 and ((0 <= a) & (a < 5000)).all()
    b = temperature_sample(logits, temps, seeds + 1)
    assert not torch.equal(a, b)


def test_sample_respects_masks():
    logits = torch.full((3, 9000), float("-inf"))
    logits[0, 8999] = 0.0
    logits[1, 17] = 0.0
    logits[2, 4500] = 3.0
    got = temperature_sample(logits, torch.ones(3), torch.arange(3, dtype=torch.int64))
    assert got.tolist() == [8999, 17, 4500]


def test_all_masked_rows_draw_token_zero():
    got = temperature_sample(torch.full((2, 5000), float("-inf")), torch.ones(2), torch.arange(2))
    assert got.tolist() == [0, 0]


def test_sample_with_tiny_temperature_is_argmax():
    logits = torch.randn(4, 7000)
    got = temperature_sample(logits, torch.full((4,), 1e-5), torch.arange(4, dtype=torch.int64))
    assert torch.equal(got, logits.argmax(-1))


def test_a_rows_token_depends_on_neither_its_batch_nor_the_program_length():
    """The column layout and the noise counters are fixed: the launch geometry only changes speed."""
    rows = 12
    logits = torch.randn(rows, 10000) * 0.5  # 3 tiles a row, the last one partial; flat: every draw counts
    temps = torch.rand(rows) + 0.8
    seeds = torch.arange(rows, dtype=torch.int64) * 13 + 5
    batch = temperature_sample(logits, temps, seeds)
    alone = torch.cat([temperature_sample(logits[i:i + 1], temps[i:i + 1], seeds[i:i + 1]) for i in range(rows)])
    assert torch.equal(batch, alone)
    for tiles in (1, 2):
        tuning = replace(DEFAULT_TUNING, sample_max_tiles_per_program=tiles)
        assert sampling.sample_plan(rows, 10000, logits.device, tuning).tiles_per_program == tiles
        assert torch.equal(temperature_sample(logits, temps, seeds, tuning=tuning), batch)


def test_nan_logits_are_drawn_as_if_masked():
    """A program that meets a NaN redoes its tiles with NaN as -inf: same tokens as the masked logits."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 9000, generator=g) * 2
    logits[0, ::3] = float("nan")  # every column of row 0 holds a NaN
    logits[1, torch.randint(0, 9000, (40,), generator=g)] = float("nan")
    logits[2, 4096:] = float("nan")  # a whole chunk
    temps = torch.full((6,), 0.8)
    seeds = torch.arange(6, dtype=torch.int64)
    got = temperature_sample(logits, temps, seeds)
    assert not torch.isnan(logits[torch.arange(6), got]).any()
    assert torch.equal(got, temperature_sample(logits.nan_to_num(nan=float("-inf")), temps, seeds))


def test_one_launch_and_two_launches_draw_the_same_tokens_and_leave_counters_at_zero():
    """The row's last program combining in the same launch is the same computation as the separate launch;
    the arrival counters it uses are zero again afterwards, so the next launch can reuse them."""
    from hotfuse.kernels.sampling.race import zeroed_counters

    logits = torch.randn(5, 13000) * 3
    temps = torch.rand(5) + 0.3
    seeds = torch.arange(5, dtype=torch.int64) * 11
    one_launch = replace(DEFAULT_TUNING, sample_max_tiles_per_program=1, one_launch_sampling=True)  # 4 programs a row
    one = [temperature_sample(logits, temps, seeds, tuning=one_launch) for _ in range(2)]
    assert not zeroed_counters(logits.device, 5).any()
    two = temperature_sample(logits, temps, seeds, tuning=replace(one_launch, one_launch_sampling=False))
    assert torch.equal(one[0], two) and torch.equal(one[1], two)


SAMPLE_PLAN = {(1, 128256): None, (2, 65537): (16, 2), (16, 128256): (16, 2), (16, 131072): (16, 2), (17, 128256): None,
               (16, 65536): None, (16, 131073): None, (4, 262144): None}


def test_the_sampler_takes_the_cluster_race_where_it_was_faster():
    """fp32 logits of 17-32 tiles, 2 to 16 rows (the interpreter follows the GPU's plan); other dtypes never."""
    cpu = torch.device("cpu")
    assert {shape: plan.cluster_race_geometry(*shape, torch.float32, cpu) for shape in SAMPLE_PLAN} == SAMPLE_PLAN
    assert plan.cluster_race_geometry(16, 128256, torch.float16, cpu) is None


@pytest.mark.parametrize("rows, vocab", [(3, 70001), (2, 131072)])
def test_the_cluster_race_draws_the_tokens_of_the_column_race(rows, vocab):
    """Same scores, noise and tie rules in both kernels, so a row's token does not depend on which one draws it:
    flat rows (every column in the running), masked and NaN logits, a partial last tile."""
    g = torch.Generator().manual_seed(rows * vocab)
    logits = torch.randn(rows, vocab, generator=g) * 0.5
    logits[0, : vocab // 2] = float("-inf")
    logits[-1, torch.randint(0, vocab, (50,), generator=g)] = float("nan")
    temps = torch.rand(rows, generator=g) + 0.5
    seeds = torch.arange(rows, dtype=torch.int64) * 17 + 2
    assert plan.cluster_race_geometry(rows, vocab, logits.dtype, logits.device) is not None
    cluster = [temperature_sample(logits, temps, seeds + k) for k in range(3)]
    assert not KERNEL_FAILURES.failed(plan.CLUSTER_RACE), "the cluster race failed and fell back"
    no_cluster = replace(DEFAULT_TUNING, cluster_race=None)
    race = [temperature_sample(logits, temps, seeds + k, tuning=no_cluster) for k in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(cluster, race))
    assert not torch.isnan(logits[torch.arange(rows), cluster[0]]).any()
    assert len({tuple(t.tolist()) for t in cluster}) > 1  # the seeds matter


def test_a_cluster_race_that_fails_turns_itself_off_and_the_column_race_draws(monkeypatch):
    from hotfuse.kernels.sampling import race

    logits, temps, seeds = torch.randn(3, 70001), torch.rand(3) + 0.5, torch.arange(3, dtype=torch.int64)
    expected = temperature_sample(logits, temps, seeds)  # the cluster race
    launches = []

    class Refused:
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                launches.append(grid)
                raise RuntimeError("cluster launch refused")
            return launch

    monkeypatch.setattr(race, "_sample_cluster_kernel", Refused())
    for _ in range(2):
        assert torch.equal(temperature_sample(logits, temps, seeds), expected)
    assert len(launches) == 1
    assert KERNEL_FAILURES.snapshot() == {
        "sample_cluster": "RuntimeError: cluster launch refused; the column race kernel from now on"}
    assert sampling.warm_up(logits)  # and warm-up goes on without it


class TestChiSquare:
    """Sample from fixed logits through the kernel; compare counts with the exact softmax distribution.

    24 classes of 256 tokens each (token i has logit base[i % 24]), V = 6144: a whole tile and a partial one
    per row, so both the column race (a column holds tokens of several classes) and the race inside the
    winning column decide the class. (Several programs per row: the other sampling tests.)"""

    K, V, N, T = 24, 6144, 800, 0.8
    CRITICAL = 49.73  # chi-square, 23 degrees of freedom, p = 0.001

    @pytest.fixture(scope="class")
    def counts(self):
        base = torch.linspace(-1.5, 1.5, self.K)
        logits = base.repeat(self.V // self.K).expand(self.N, self.V).contiguous()
        assert sampling.sample_plan(self.N, self.V, logits.device).tiles_per_program == 2
        tokens = temperature_sample(logits, torch.full((self.N,), self.T), torch.arange(self.N, dtype=torch.int64))
        return base, torch.bincount(tokens % self.K, minlength=self.K).double()

    def statistic(self, base, counts, temperature):
        expected = torch.softmax(base.double() / temperature, -1) * self.N
        return (((counts - expected) ** 2) / expected).sum().item()

    def test_passes_at_the_right_temperature(self, counts):
        base, c = counts
        assert self.statistic(base, c, self.T) < self.CRITICAL

    def test_fails_for_a_wrong_temperature(self, counts):
        base, c = counts
        assert self.statistic(base, c, self.T * 1.6) > self.CRITICAL
        assert self.statistic(base, c, self.T / 1.6) > self.CRITICAL
        assert not math.isnan(self.statistic(base, c, self.T))


def test_dependent_launches_that_cannot_run_here_fall_back_to_plain_launches(monkeypatch):
    """From Hopper on the kernels launch as programmatic dependents (griddepcontrol). Should such a launch fail here
    (a Triton or a driver that cannot), the same kernels launch plainly from then on: recorded, not raised, and
    hotfuse.safety logs it with the fusion. The interpreter, told it runs on a Hopper GPU, cannot run griddepcontrol
    at all: the fallback path, taken for real."""
    monkeypatch.setattr(plan, "nvidia_hopper_or_later", lambda device: True)
    two_pass = replace(DEFAULT_TUNING, cluster_softmax=None)
    logits, temps = torch.randn(3, 5000), torch.rand(3) + 0.5
    assert plan.dependency_flags(logits.device, "softmax_partials", two_pass) == (True, False)
    got = temperature_softmax(logits, temps, tuning=two_pass)
    assert (got.double() - reference(logits, temps)).abs().max().item() <= 1e-6
    assert list(KERNEL_FAILURES.snapshot()) == ["dependent_launch"]
    assert KERNEL_FAILURES.snapshot()["dependent_launch"].endswith("; plain launches from now on")
    assert plan.dependency_flags(logits.device, "softmax_partials", two_pass) == (False, False)
    seeds = torch.arange(3, dtype=torch.int64)
    assert torch.equal(temperature_sample(logits, temps, seeds),
                       temperature_sample(logits, temps, seeds, tuning=replace(DEFAULT_TUNING, entry_wait=frozenset())))


def test_position_keyed_seeds_depend_only_on_the_request_seed_and_the_position():
    from hotfuse.kernels.sampling import MAX_POSITION, position_keyed_seeds

    seeds = torch.tensor([7, 7, 7, -(1 << 63), (1 << 63) - 1, 123], dtype=torch.int64)
    positions = torch.tensor([0, 1, MAX_POSITION - 1, 5, 5, 0], dtype=torch.int64)
    keys = position_keyed_seeds(seeds, positions)
    assert keys.dtype == torch.int64 and keys.tolist()[0] == 7 and keys.tolist()[5] == 123  # position 0: the seed
    # the same (seed, position) in another batch, another order: the same key
    again = position_keyed_seeds(seeds.flip(0), positions.flip(0)).flip(0)
    assert torch.equal(keys, again)
    # every position of one request gets its own key, including the largest position taken (no int64 overflow)
    positions = torch.arange(0, MAX_POSITION, MAX_POSITION // 4096, dtype=torch.int64)
    one_request = position_keyed_seeds(torch.full_like(positions, -12345), positions)
    assert one_request.unique().numel() == positions.numel()
    assert ((one_request ^ -12345) // positions.clamp_min(1) == torch.where(positions > 0, 0x9E3779B9, 0)).all()
