"""Target validation (drift detection) and hotfuse's own patcher, on throwaway modules."""

import dataclasses
import importlib
import sys
import textwrap

import pytest

from hotfuse.patching import apply_with_patcher, revert
from hotfuse.targets import Target, fingerprint_source, validate

ENGINE_SRC = '''
import functools

def scale(x, factor):
    return x * factor

class Sampler:
    @staticmethod
    def temperature(logits, t):
        return logits / t

    def forward(self, logits):
        return logits + 1
'''


@pytest.fixture
def engine_module(tmp_path, monkeypatch):
    """A throwaway 'engine' package with a module that another module imports by name."""
    pkg = tmp_path / "fakeengine"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "ops.py").write_text(textwrap.dedent(ENGINE_SRC))
    (pkg / "user.py").write_text("from fakeengine.ops import scale\n\ndef use(x):\n    return scale(x, 2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("fakeengine")]:
        monkeypatch.delitem(sys.modules, name)
    ops = importlib.import_module("fakeengine.ops")
    user = importlib.import_module("fakeengine.user")
    yield ops, user
    for name in [m for m in sys.modules if m.startswith("fakeengine")]:
        sys.modules.pop(name, None)


def target_for(qualname, params, source=ENGINE_SRC):
    fp = fingerprint_source(textwrap.dedent(source), qualname)
    return Target("fakeengine.ops", qualname, params, {fp: "test release"})


def test_fingerprint_ignores_trailing_whitespace_but_not_code():
    base = fingerprint_source("def f(x):\n    return x + 1\n", "f")
    assert base == fingerprint_source("def f(x):   \n\n    return x + 1\n", "f")
    assert base != fingerprint_source("def f(x):\n    return x + 2\n", "f")
    assert fingerprint_source("def f(x):\n    return x\n", "g") is None


def test_fingerprint_includes_decorators_and_methods():
    plain = fingerprint_source("def f(x):\n    return x\n", "f")
    assert plain != fingerprint_source("@torch.compile\ndef f(x):\n    return x\n", "f")
    assert fingerprint_source(textwrap.dedent(ENGINE_SRC), "Sampler.temperature") is not None


def test_validated_target_passes(engine_module):
    v = validate(target_for("scale", ("x", "factor")))
    assert v.ok and not v.drift_allowed, v.reason


def test_changed_source_is_drift_and_untouched(engine_module):
    ops, _ = engine_module
    before = ops.scale
    changed = ENGINE_SRC.replace("return x * factor", "return x * factor * 1")
    target = dataclasses.replace(target_for("scale", ("x", "factor")),
                                 fingerprints={fingerprint_source(textwrap.dedent(changed), "scale"): "other"})
    v = validate(target)
    assert not v.ok and "matches no validated release" in v.reason
    assert ops.scale is before


def test_allow_drift_applies_on_signature_match_only(engine_module):
    target = dataclasses.replace(target_for("scale", ("x", "factor")), fingerprints={"0" * 16: "other"})
    v = validate(target, allow_drift=True)
    assert v.ok and v.drift_allowed and "HOTFUSE_ALLOW_DRIFT" in v.reason
    wrong_params = dataclasses.replace(target, params=("x",))
    v = validate(wrong_params, allow_drift=True)
    assert not v.ok and "parameters" in v.reason


@pytest.mark.parametrize("qualname, reason", [("missing_fn", "is missing"), ("Nope.forward", "is missing")])
def test_missing_target_is_drift(engine_module, qualname, reason):
    v = validate(Target("fakeengine.ops", qualname, ()))
    assert not v.ok and reason in v.reason


def test_missing_module_is_drift():
    v = validate(Target("fakeengine_does_not_exist.ops", "f", ()))
    assert not v.ok and "does not import" in v.reason


def test_patcher_applies_rebinds_copies_and_reverts(engine_module):
    ops, user = engine_module
    original = ops.scale
    calls = []

    def around(orig, x, factor):
        calls.append((x, factor))
        return orig(x, factor) + 100

    v = validate(target_for("scale", ("x", "factor")))
    patch = apply_with_patcher("sampler", v, around)
    assert ops.scale(3, 2) == 106
    assert user.use(3) == 106, "the `from X import Y` copy must be rebound"
    assert calls == [(3, 2), (3, 2)]
    v2 = validate(target_for("scale", ("x", "factor")))
    assert not v2.ok and "already patched" in v2.reason
    revert(patch)
    assert ops.scale is original and user.scale is original
    assert user.use(3) == 6


def test_patcher_keeps_staticmethods_static(engine_module):
    ops, _ = engine_module
    v = validate(target_for("Sampler.temperature", ("logits", "t")))
    assert v.ok, v.reason
    patch = apply_with_patcher("sampler", v, lambda orig, logits, t: orig(logits, t) * 10)
    assert ops.Sampler.temperature(8, 2) == 40
    assert ops.Sampler().temperature(8, 2) == 40
    revert(patch)
    assert ops.Sampler.temperature(8, 2) == 4
    assert isinstance(vars(ops.Sampler)["temperature"], staticmethod)


def test_foreign_wrapper_is_drift(engine_module):
    ops, _ = engine_module
    import functools

    inner = ops.scale

    @functools.wraps(inner)
    def someone_elses(*a, **k):
        return inner(*a, **k)

    ops.scale = someone_elses
    v = validate(target_for("scale", ("x", "factor")))
    assert not v.ok and "already patched" in v.reason
