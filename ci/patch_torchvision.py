"""Make the registry's CUDA torchvision wheel importable on CPU torch (CI venv only).

torchvision/_meta_registrations.py registers fake kernels for torchvision::nms / qnms unconditionally;
on CPU torch without torchvision's C++ ops those registrations raise at import, and SGLang imports
torchvision unconditionally. This wraps each such registration in a guard that skips it when the op is
missing. Idempotent.
"""

import pathlib
import re

import importlib.util

spec = importlib.util.find_spec("torchvision")
path = pathlib.Path(spec.origin).parent / "_meta_registrations.py"
src = path.read_text()
marker = "# hotfuse-ci: guarded"
if marker not in src:
    pattern = re.compile(r'^@torch\.library\.register_fake\("torchvision::(\w+)"\)\n', re.M)
    count = 0

    def guard(m):
        global count
        count += 1
        op = m.group(1)
        return (
            f"@(torch.library.register_fake(\"torchvision::{op}\") "
            f"if hasattr(torch.ops.torchvision, \"{op}\") else (lambda f: f))  {marker}\n"
        )

    src = pattern.sub(guard, src)
    path.write_text(src)
    print(f"patch_torchvision: guarded {count} register_fake decorator(s) in {path}")
else:
    print("patch_torchvision: already guarded")
