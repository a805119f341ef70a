"""The README stays a five-minute read, and every command in it (and in the other docs a user or maintainer
follows) works as written: `hotfuse ...` lines parse with the CLI's own parser, scripts exist."""

import re
import shlex
from pathlib import Path

import pytest

from hotfuse.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs" / "fusions").glob("*.md")),
        ROOT / "docs" / "demo.md"]
ENGINE_COMMANDS = ("vllm", "python", "python3", "pip")  # the engines', Python's and pip's own commands


def commands(path: Path) -> list[str]:
    """Command lines of the doc's fenced code blocks: every line of a ```bash block, and `$ ...` lines of others."""
    found = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", path.read_text(), re.S):
        for line in body.splitlines():
            line = line.split("  #")[0].strip()
            if lang == "bash" and line and not line.startswith("#"):
                found.append(line)
            elif line.startswith("$ "):
                found.append(line[2:].split("  #")[0].strip())
    return found


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 220


def test_the_docs_exist_and_hold_commands():
    for path in DOCS:
        assert path.is_file(), path
    assert len(commands(ROOT / "README.md")) >= 5


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_in_the_docs_works_as_written(path):
    parser = build_parser()
    for line in commands(path):
        words = shlex.split(line)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # VAR=value prefixes
            words.pop(0)
        if not words or words[0] in ENGINE_COMMANDS:
            continue
        if words[0] == "hotfuse":
            try:
                parser.parse_args(words[1:])
            except SystemExit as exc:
                raise AssertionError(f"{path.name}: `{line}` does not parse: exit {exc.code}") from None
        elif words[0] == "bash":
            assert (ROOT / words[1]).is_file(), f"{path.name}: `{line}`: no {words[1]}"
        elif words[0] == "git":
            continue
        else:
            raise AssertionError(f"{path.name}: `{line}`: a command this test does not know how to check")


def test_a_wrong_command_in_a_doc_would_be_caught(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("```bash\nhotfuse status --no-such-flag\n```\n")
    with pytest.raises(AssertionError, match="does not parse"):
        test_every_command_in_the_docs_works_as_written(doc)
