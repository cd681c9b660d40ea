"""Style prompts: every built-in renders context-first with no system prompt; user files load."""

from __future__ import annotations

import pytest

from mind_nemo.core.errors import UserError
from mind_nemo.core.styles import ALL_STYLES
from mind_nemo.synthesize.styles import load_prompt

CONTEXT = "Let $x^{2} = 9$, so $x = \\pm 3$ {not a placeholder}."


@pytest.mark.parametrize("style", ALL_STYLES)
def test_builtin_prompt_puts_context_first_and_no_system(style):
    prompt = load_prompt(style)
    messages = prompt.messages(CONTEXT)
    assert [m["role"] for m in messages] == ["user"]
    content = messages[0]["content"]
    assert content.startswith(CONTEXT)  # raw context first, instruction after (the paper)
    instruction = content[len(CONTEXT) :].strip()
    assert len(instruction.split()) > 20


def test_styles_have_distinct_instructions():
    texts = {load_prompt(s).user for s in ALL_STYLES}
    assert len(texts) == len(ALL_STYLES)


def test_user_prompt_file_with_system_and_literal_braces(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("system: Be exact.\nuser: |-\n  {context}\n\n  Write it as a set {{A, B}}.\n")
    prompt = load_prompt("debate", path)
    messages = prompt.messages("1+1=2")
    assert messages[0] == {"role": "system", "content": "Be exact."}
    assert messages[1]["content"] == "1+1=2\n\nWrite it as a set {A, B}."


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("user: no placeholder here\n", "no {context} placeholder"),
        ("user: '{context} and {other}'\n", "bad placeholder"),
        ("system: only a system\n", "needs a 'user:' template"),
        ("user: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_prompt_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as err:
        load_prompt("debate", path)
    assert "\n" not in str(err.value)


def test_unknown_style_and_missing_file():
    with pytest.raises(UserError, match="unknown style 'poetry'"):
        load_prompt("poetry")
    with pytest.raises(UserError, match="cannot read prompt file"):
        load_prompt("debate", "/nonexistent/prompt.yaml")
