"""Every ``infercam`` command line in the README's and docs' shell blocks parses with today's options: a renamed or
removed flag makes this fail instead of a user's first try (the README's usage section was once lost unnoticed)."""
import re
import shlex
from pathlib import Path

import pytest

from infercam.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def shell_commands(text: str) -> list[list[str]]:
    """The infercam command lines of a Markdown text's ```bash blocks: continuation lines joined, comments dropped,
    ``NAME="..."`` variables of the block substituted; the words after ``infercam``."""
    commands = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S):
        variables: dict[str, str] = {}
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if len(words) == 1 and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                name, value = words[0].split("=", 1)
                variables[name] = value
                continue
            words = [w for word in words for w in (shlex.split(variables[word[1:]]) if word[1:] in variables
                                                     and word.startswith("$") else [word])]
            if words and (words[0] == "infercam" or words[0].endswith("/infercam")):  # .venv/bin/infercam
                commands.append(words[1:])
    return commands


CASES = [(doc.relative_to(REPO), words) for doc in DOCS for words in shell_commands(doc.read_text())]


def test_the_docs_show_the_main_commands():
    shown = {words[0] for _, words in CASES}
    assert {"infer", "eval", "pseudo", "train-aff", "train-seg", "report", "make-photos", "train-cls"} <= shown


@pytest.mark.parametrize("doc, words", CASES, ids=[f"{doc}:{' '.join(w[:1])}" for doc, w in CASES])
def test_a_documented_command_line_parses(doc, words):
    words = ["cpu" if w.startswith("cuda") else w for w in words]  # the device is checked at parse time
    try:
        build_parser().parse_args(words)
    except SystemExit as exc:
        pytest.fail(f"{doc}: `infercam {' '.join(words)}` does not parse (exit {exc.code})")
