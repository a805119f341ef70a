"""The layering the card asks for, read from the sources (AST, nothing imported): kernels never import an engine
and keep no books; adapters hold no kernel math; Triton is imported in one place."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNELS = sorted((ROOT / "plugin" / "kernels").rglob("*.py"))
ADAPTERS = sorted((ROOT / "patches").rglob("*.py"))
BOOKKEEPING = {"hotfuse.counters", "hotfuse.log", "hotfuse.registry", "hotfuse.safety", "hotfuse.runtime",
               "hotfuse.flags", "logging"}


def imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (top level, functions, conditional blocks)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_there_are_kernel_modules_and_adapters_to_check():
    assert len(KERNELS) >= 8 and len(ADAPTERS) >= 10


def test_kernels_import_no_engine():
    for path in KERNELS:
        engines = {m for m in imports(path) if m.split(".")[0] in ("sglang", "vllm")}
        assert not engines, (path.name, engines)


def test_kernel_modules_keep_no_books():
    """No fusion names, counters or logger in a kernel module: hotfuse.safety counts and logs (checks.py is the
    table that ties each kernel to its fusion, and imports none of them either)."""
    from hotfuse.registry import FUSION_NAMES

    for path in KERNELS:
        assert not imports(path) & BOOKKEEPING, (path.relative_to(ROOT), imports(path) & BOOKKEEPING)
        if path.name != "checks.py":
            names = {node.value for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.Constant) and node.value in FUSION_NAMES}
            assert not names, (path.relative_to(ROOT), names)


def test_adapters_hold_no_kernel_math():
    for path in ADAPTERS:
        assert not {m for m in imports(path) if m.split(".")[0] == "triton"}, path.relative_to(ROOT)
        assert "triton.jit" not in path.read_text(), path.relative_to(ROOT)


def test_triton_is_imported_in_one_place():
    importers = [path.relative_to(ROOT) for path in sorted((ROOT / "plugin").rglob("*.py")) + ADAPTERS
                 if any(m.split(".")[0] == "triton" for m in imports(path))
                 and "import triton\n" in path.read_text()]
    assert importers == [Path("plugin/kernels/__init__.py")], importers
