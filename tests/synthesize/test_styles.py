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


# What NeMo-Skills' prompt loader accepts, read from NVIDIA/NeMo-Skills at commit
# 0b012df8a09cd4730d31b16e90a0d8f13d145fb8, nemo_skills/prompt/utils.py: ``PromptConfig`` has
# ``user`` (required), ``system`` (``None`` = no system message, else sent as given, ``''``
# included), ``code_tags`` (which ``get_prompt`` passes itself, so a file setting it fails) and
# ``few_shot_examples`` (``FewShotExamplesConfig``); ``build_user_message`` fills ``{examples}``
# with ``''`` when no examples are configured. Unknown keys fail the dataclass constructor.
NS_PROMPT_KEYS = ("user", "system", "few_shot_examples")
NS_FEW_SHOT_KEYS = (
    "prefix", "template", "suffix", "examples_type", "retrieval_field", "retrieval_file",
    "retrieved_entries", "retrieved_few_shots", "randomize_retrieved_entries",
    "max_retrieved_chars", "max_retrieved_chars_field", "retriever",
)  # fmt: skip


def write(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_accepted_keys_are_nemo_skills_documented_fields_plus_response_prefix():
    from mind_nemo.synthesize import styles

    assert set(styles.NEMO_SKILLS_KEYS) == set(NS_PROMPT_KEYS)
    assert set(styles.FEW_SHOT_KEYS) == set(NS_FEW_SHOT_KEYS)
    assert set(styles.ACCEPTED_KEYS) - set(NS_PROMPT_KEYS) == {"response_prefix"}


@pytest.mark.parametrize("key", ["temperature", "code_tags", "User", "prompt"])
def test_unknown_key_is_refused_in_one_line_naming_it(tmp_path, key):
    path = write(tmp_path, f"user: '{{context}}'\n{key}: x\n")
    with pytest.raises(UserError, match=f"unknown key '{key}'") as err:
        load_prompt("debate", path)
    assert "\n" not in str(err.value)


def test_unknown_few_shot_key_is_refused(tmp_path):
    path = write(tmp_path, "user: '{context}'\nfew_shot_examples:\n  prefx: x\n")
    with pytest.raises(UserError, match="unknown key 'few_shot_examples.prefx'"):
        load_prompt("debate", path)


def test_empty_system_is_sent_as_an_empty_system_message(tmp_path):
    prompt = load_prompt("debate", write(tmp_path, "system: ''\nuser: '{context} go'\n"))
    assert prompt.messages("x") == [
        {"role": "system", "content": ""},
        {"role": "user", "content": "x go"},
    ]
    null_system = load_prompt("debate", write(tmp_path, "system:\nuser: '{context} go'\n"))
    assert null_system.messages("x") == [{"role": "user", "content": "x go"}]
    assert prompt.fingerprint() != null_system.fingerprint()


def test_examples_placeholder_renders_empty_like_nemo_skills_without_examples(tmp_path):
    text = "few_shot_examples:\n  prefix: 'Examples:'\n  template: '{problem}'\nuser: |-\n"
    text += "  {examples}{context}\n\n  Now discuss it.\n"
    prompt = load_prompt("debate", write(tmp_path, text))
    assert prompt.messages("1+1=2")[-1]["content"] == "1+1=2\n\nNow discuss it."


@pytest.mark.parametrize("source", ["examples_type: gsm8k_standard", "retrieval_field: question"])
def test_few_shot_sources_are_refused_not_dropped(tmp_path, source):
    path = write(tmp_path, f"few_shot_examples:\n  {source}\nuser: '{{examples}}{{context}}'\n")
    with pytest.raises(UserError, match="zero-shot"):
        load_prompt("debate", path)


def test_builtin_prompts_use_only_nemo_skills_keys():
    import yaml

    from mind_nemo.synthesize.styles import builtin_prompt_path

    for style in ALL_STYLES:
        data = yaml.safe_load(builtin_prompt_path(style).read_text())
        assert set(data) <= set(NS_PROMPT_KEYS), style


def test_response_prefix_opens_the_assistant_turn_and_appears_once(tmp_path):
    from mind_nemo.synthesize.styles import continuation_fields, template_flags

    path = write(tmp_path, "user: '{context}'\nresponse_prefix: 'Student 1:'\n")
    prompt = load_prompt("two_students", path)
    messages = prompt.messages("2+2=4")
    assert messages[-1] == {"role": "assistant", "content": "Student 1:"}
    assert template_flags(messages) == {"continue_final_message": True}
    assert template_flags(messages[:-1]) == {"add_generation_prompt": True}
    assert continuation_fields(messages) == {
        "continue_final_message": True,
        "add_generation_prompt": False,
    }
    assert continuation_fields(messages[:-1]) == {} and continuation_fields("text") == {}
    assert prompt.answer_text(" Why is it 4?") == "Student 1: Why is it 4?"
    assert prompt.answer_text("Student 1: Why?") == "Student 1: Why?"  # the model repeated it
    assert prompt.answer_text(" Student 1: Why?") == " Student 1: Why?"
    plain = load_prompt("two_students", write(tmp_path, "user: '{context}'\n"))
    assert plain.answer_text("x") == "x" and plain.fingerprint() != prompt.fingerprint()


def test_response_prefix_rendered_for_completions_ends_the_prompt(tmp_path, embedded_tokenizer):
    from mind_nemo.synthesize.styles import template_flags

    prompt = load_prompt("debate", write(tmp_path, "user: '{context}'\nresponse_prefix: 'Ann:'\n"))
    messages = prompt.messages("2+2=4")
    text = embedded_tokenizer.apply_chat_template(
        messages, tokenize=False, **template_flags(messages)
    )
    opened = embedded_tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("Ann:") and text.count("Ann:") == 1
    assert text.startswith(opened)  # the prefix follows the assistant header, as NeMo-Skills'


def test_prefix_needs_a_server_that_can_continue_the_assistant_turn(tmp_path):
    from mind_nemo.synthesize.styles import check_prefix_support

    prompt = load_prompt("debate", write(tmp_path, "user: '{context}'\nresponse_prefix: 'A:'\n"))
    with pytest.raises(UserError, match="server.api=completions"):
        check_prefix_support([prompt], "local", "chat")
    check_prefix_support([prompt], "local", "completions")
    check_prefix_support([prompt], "vllm", "chat")
    check_prefix_support([load_prompt("debate")], "local", "chat")
    with pytest.raises(UserError, match="must be text"):
        load_prompt("debate", write(tmp_path, "user: '{context}'\nresponse_prefix: [1]\n"))


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_synthesize_stores_the_prefix_once_with_either_api(stub_server, tmp_path, api):
    from tests.helpers import read_rows, run_stage, write_corpus

    stub = stub_server()
    prompt = write(tmp_path, "user: '{context}'\nresponse_prefix: 'Moderator:'\n")
    out, corpus = tmp_path / "run", write_corpus(tmp_path / "c.jsonl", 2)
    run_stage(
        "synthesize", *stub.overrides(), f"server.api={api}", "+style=debate",
        f"style.prompt_file={prompt}", "corpus=files", f"corpus.path={corpus}",
        "corpus.id_field=id", "limit=2", f"output_dir={out}", timeout=300,
    )  # fmt: skip
    rows = read_rows(out / "conversations" / "shard-00000-of-00001.jsonl")
    assert len(rows) == 2
    for row in rows:
        # The stub answers "Student: ..."; the stored text starts with the prefix, once.
        assert row["text"].startswith("Moderator:Student: ")
        assert row["text"].count("Moderator:") == 1
