"""The flag parser: exact semantics of HOTFUSE / HOTFUSE_DISABLE / HOTFUSE_ALLOW_DRIFT."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotfuse.flags import Mode, parse_flags
from hotfuse.registry import FUSION_NAMES


def modes(flags):
    return {n: flags.mode(n) for n in FUSION_NAMES}


@pytest.mark.parametrize("value", [None, "", "0", " 0 ", "  "])
def test_unset_or_zero_is_inert(value):
    env = {} if value is None else {"HOTFUSE": value}
    flags = parse_flags(env)
    assert flags.inert and flags.error is None
    assert set(modes(flags).values()) == {Mode.OFF}
    assert flags.requested() == ()


@pytest.mark.parametrize("value", ["1", "all", "ALL", " All ", " 1"])
def test_one_or_all_enables_every_fusion(value):
    flags = parse_flags({"HOTFUSE": value})
    assert not flags.inert
    assert modes(flags) == {n: Mode.FUSED for n in FUSION_NAMES}


def test_comma_list_enables_only_those_case_and_space_insensitive():
    flags = parse_flags({"HOTFUSE": " Sampler , GEMMA4_ROUTER "})
    assert flags.requested() == ("sampler", "gemma4_router")
    assert flags.mode("topk_postprocess") is Mode.OFF


def test_disable_forces_reference_and_wins_over_enable():
    flags = parse_flags({"HOTFUSE": "1", "HOTFUSE_DISABLE": "gemma4_router"})
    assert flags.mode("gemma4_router") is Mode.REFERENCE
    assert flags.mode("sampler") is Mode.FUSED


def test_disable_of_a_fusion_not_enabled_still_forces_its_reference_path():
    # The kill switch also covers fusions the engine ships natively: naming one in HOTFUSE_DISABLE
    # asks for the reference path even though HOTFUSE did not enable it.
    flags = parse_flags({"HOTFUSE": "sampler", "HOTFUSE_DISABLE": "spec_gather"})
    assert flags.mode("sampler") is Mode.FUSED
    assert flags.mode("spec_gather") is Mode.REFERENCE
    assert flags.mode("topk_postprocess") is Mode.OFF


def test_disable_all():
    flags = parse_flags({"HOTFUSE": "1", "HOTFUSE_DISABLE": "all"})
    assert set(modes(flags).values()) == {Mode.REFERENCE}


def test_disable_is_ignored_while_hotfuse_is_off():
    flags = parse_flags({"HOTFUSE_DISABLE": "sampler"})
    assert flags.inert and flags.error is None


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"HOTFUSE": "sampler,bogus"}, "bogus"),
        ({"HOTFUSE": "samplr"}, "samplr"),
        ({"HOTFUSE": "2"}, "'2'"),
        ({"HOTFUSE": "true"}, "true"),
        ({"HOTFUSE": "sampler,,gemma4_router"}, "empty name"),
        ({"HOTFUSE": "sampler,"}, "empty name"),
        ({"HOTFUSE": "all,sampler"}, "stand alone"),
        ({"HOTFUSE": "1", "HOTFUSE_DISABLE": "router"}, "router"),
        ({"HOTFUSE": "1", "HOTFUSE_ALLOW_DRIFT": "maybe"}, "maybe"),
    ],
)
def test_invalid_values_patch_nothing_and_name_the_valid_fusions(env, fragment):
    flags = parse_flags(env)
    assert flags.error is not None and fragment in flags.error
    for name in FUSION_NAMES:
        assert name in flags.error
    assert flags.inert
    assert set(modes(flags).values()) == {Mode.OFF}


def test_every_problem_is_named_in_one_line():
    flags = parse_flags({"HOTFUSE": "Sampler, ,samplr,routr", "HOTFUSE_DISABLE": "bogus", "HOTFUSE_VERIFY": "perhaps"})
    assert "\n" not in flags.error
    for fragment in ("empty name at position 2", "samplr", "routr", "HOTFUSE_DISABLE='bogus'", "bogus",
                     "HOTFUSE_VERIFY='perhaps'"):
        assert fragment in flags.error, fragment
    assert flags.inert


def test_hyphens_stand_for_underscores_in_fusion_names():
    flags = parse_flags({"HOTFUSE": "Sampler,gemma4-router", "HOTFUSE_DISABLE": "topk-postprocess"})
    assert flags.error is None
    assert flags.mode("gemma4_router") is Mode.FUSED and flags.mode("topk_postprocess") is Mode.REFERENCE
    only_empty = parse_flags({"HOTFUSE": "Sampler, ,gemma4-router"})  # the operator's value from the issue
    assert "empty name at position 2" in only_empty.error and "unknown" not in only_empty.error


def test_inert_reason_says_what_hotfuse_was_set_to():
    from hotfuse.runtime import inert_reason

    assert inert_reason(parse_flags({})) == "HOTFUSE is not set: nothing is patched"
    reason = inert_reason(parse_flags({"HOTFUSE": "0", "HOTFUSE_DISABLE": "sampler"}))
    assert "HOTFUSE='0'" in reason and "not set" not in reason


def test_allow_drift_parsing():
    assert parse_flags({"HOTFUSE": "1", "HOTFUSE_ALLOW_DRIFT": "1"}).allow_drift
    assert not parse_flags({"HOTFUSE": "1", "HOTFUSE_ALLOW_DRIFT": "0"}).allow_drift
    assert not parse_flags({"HOTFUSE": "1"}).allow_drift


def test_flagset_is_immutable():
    flags = parse_flags({"HOTFUSE": "1"})
    with pytest.raises(Exception):
        flags.allow_drift = True  # type: ignore[misc]


def test_cache_key_tracks_effective_behaviour():
    a = parse_flags({"HOTFUSE": "sampler"}).cache_key()
    assert a == parse_flags({"HOTFUSE": " SAMPLER "}).cache_key()
    assert a != parse_flags({"HOTFUSE": "gemma4_router"}).cache_key()
    assert a != parse_flags({"HOTFUSE": "sampler", "HOTFUSE_DISABLE": "sampler"}).cache_key()
    assert parse_flags({}).cache_key() == parse_flags({"HOTFUSE": "bogus"}).cache_key() == "inert"


def test_process_flags_are_parsed_once(monkeypatch):
    import hotfuse.flags as flags_module

    monkeypatch.setattr(flags_module, "_process_flags", None)
    monkeypatch.setenv("HOTFUSE", "sampler")
    first = flags_module.process_flags()
    monkeypatch.setenv("HOTFUSE", "gemma4_router")
    assert flags_module.process_flags() is first
    assert first.requested() == ("sampler",)


_pieces = st.sampled_from(list(FUSION_NAMES) + ["all", "1", "0", "", " ", ",", "x", "Sampler", "ALL"])


@settings(max_examples=400, deadline=None)
@given(enable=st.lists(_pieces, max_size=5).map(",".join), disable=st.lists(_pieces, max_size=3).map(",".join))
def test_fuzzed_values_never_half_apply(enable, disable):
    flags = parse_flags({"HOTFUSE": enable, "HOTFUSE_DISABLE": disable})
    if flags.error is not None:
        assert flags.inert and flags.requested() == ()
    else:
        assert all(flags.mode(n) in Mode for n in FUSION_NAMES)
        names = {p.strip().lower() for p in enable.split(",")}
        if flags.inert:
            assert enable.strip() in ("", "0")
        elif not names & {"1", "all"}:
            enabled = {n for n in FUSION_NAMES if flags.mode(n) is Mode.FUSED}
            assert enabled <= names


@settings(max_examples=300, deadline=None)
@given(enable=st.text(max_size=40), disable=st.text(max_size=40), drift=st.text(max_size=5))
def test_arbitrary_text_never_raises(enable, disable, drift):
    flags = parse_flags({"HOTFUSE": enable, "HOTFUSE_DISABLE": disable, "HOTFUSE_ALLOW_DRIFT": drift})
    assert (flags.error is None) or flags.inert
