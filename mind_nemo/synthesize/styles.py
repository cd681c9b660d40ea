"""Style prompts as data: YAML files in NeMo-Skills prompt-config form, loaded as strictly.

A prompt config has a ``user`` template with a ``{context}`` placeholder and an optional
``system`` text. The built-in ones live in ``mind_nemo/synthesize/prompts/<style>.yaml``; a
user's own file is passed with ``style.prompt_file=PATH``. The same files run unchanged in
``nemo_skills.inference.generate ++prompt_config=FILE``, so this loader accepts what NeMo-Skills'
prompt loader accepts and treats it the same way (:data:`NEMO_SKILLS_KEYS`):

* a key NeMo-Skills does not know is refused, in one line naming it;
* ``system:`` with a value, even ``''``, is sent as a system message (an empty one for ``''``);
  ``system:`` left null or absent sends none;
* ``{examples}`` is filled with the few-shot examples, which is ``''`` here: we generate
  zero-shot like the paper, so a ``few_shot_examples`` section that would fetch examples is
  refused rather than silently left out.

Rendering is Python ``str.format``, as in NeMo-Skills, so literal braces in a template are
written ``{{`` and ``}}``; braces inside the context itself (LaTeX!) are values.

One key is ours alone: ``response_prefix``, the text the answer must start with (e.g. the first
speaker's label, for models that drift from the format). NeMo-Skills has no prompt-config key
for it (its counterpart is the generation option ``start_assistant_response_key``, which names
an input field), so a file that sets it loads here but not in NeMo-Skills. The prefix is sent as
the start of the assistant turn (:func:`template_flags`, :func:`continuation_fields`) and the
stored conversation starts with it exactly once (:meth:`StylePrompt.answer_text`).
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mind_nemo.core.errors import UserError
from mind_nemo.core.records import CONTEXT_FIELD, text_hash
from mind_nemo.core.styles import ALL_STYLES

log = logging.getLogger(__name__)

BUILTIN_PROMPT_DIR = Path(__file__).parent / "prompts"

#: Top-level keys of NeMo-Skills' ``PromptConfig`` that a prompt YAML may set. (``code_tags`` is
#: a field there too, but ``get_prompt`` passes it separately, so a file setting it fails.)
NEMO_SKILLS_KEYS: tuple[str, ...] = ("user", "system", "few_shot_examples")
#: Keys of NeMo-Skills' ``FewShotExamplesConfig``.
FEW_SHOT_KEYS: tuple[str, ...] = (
    "prefix", "template", "suffix", "examples_type", "retrieval_field", "retrieval_file",
    "retrieved_entries", "retrieved_few_shots", "randomize_retrieved_entries",
    "max_retrieved_chars", "max_retrieved_chars_field", "retriever",
)  # fmt: skip
#: ``few_shot_examples`` keys that would make NeMo-Skills fetch examples: not supported here.
FEW_SHOT_SOURCES: tuple[str, ...] = ("examples_type", "retrieval_field", "retrieval_file",
                                     "retriever")  # fmt: skip
#: Our one extension: the start of the answer.
RESPONSE_PREFIX = "response_prefix"
ACCEPTED_KEYS: tuple[str, ...] = (*NEMO_SKILLS_KEYS, RESPONSE_PREFIX)
#: Placeholders a template may use: the context, and NeMo-Skills' few-shot examples.
EXAMPLES_FIELD = "examples"
PLACEHOLDERS: tuple[str, ...] = (CONTEXT_FIELD, EXAMPLES_FIELD)
#: Servers whose chat API continues a final assistant message (``continue_final_message``);
#: ``openai`` endpoints are passed the same fields and must accept them (vLLM/SGLang do).
CHAT_CONTINUATION_SERVERS: tuple[str, ...] = ("vllm", "sglang", "openai")


@dataclass(frozen=True)
class StylePrompt:
    """A loaded, validated prompt template for one style."""

    style: str
    user: str
    #: ``None``: no system message; any string (``''`` included) is sent as one.
    system: str | None = None
    source: str = ""
    #: The text every answer starts with (sent as the open assistant turn); ``''``: none.
    response_prefix: str = ""

    def messages(self, context: str) -> list[dict[str, str]]:
        """Chat messages for one context: the system turn when configured, the rendered user
        turn, and, with a response prefix, the assistant turn it opens."""
        messages = [] if self.system is None else [{"role": "system", "content": self.system}]
        filled = {CONTEXT_FIELD: context, EXAMPLES_FIELD: ""}
        messages.append({"role": "user", "content": self.user.format(**filled)})
        if self.response_prefix:
            messages.append({"role": "assistant", "content": self.response_prefix})
        return messages

    def answer_text(self, completion: str) -> str:
        """The conversation to store: the completion, starting with the prefix exactly once."""
        return with_prefix(self.response_prefix, completion)

    def fingerprint(self) -> str:
        """Hash of the template, so a run can tell if its prompts changed between sessions."""
        text = f"{self.system or ''}\x00{self.user}"
        if self.system == "":  # an empty system message is sent: another prompt than none
            text += "\x00system=''"
        if self.response_prefix:
            text += f"\x00{RESPONSE_PREFIX}={self.response_prefix}"
        return text_hash(text)


def with_prefix(prefix: str, completion: str) -> str:
    """``completion`` starting with ``prefix`` exactly once: servers return only what follows
    the prefix, and a model that writes it again is not doubled."""
    if not prefix or completion.lstrip().startswith(prefix.strip()):
        return completion
    return prefix + completion


def template_flags(messages: list[dict[str, str]]) -> dict[str, bool]:
    """``apply_chat_template`` flags for ``messages``: continue a final assistant message (the
    response prefix), else open a new assistant turn."""
    if messages and messages[-1]["role"] == "assistant":
        return {"continue_final_message": True}
    return {"add_generation_prompt": True}


def continuation_fields(prompt: Any) -> dict[str, bool]:
    """Extra request fields for chat messages that end in the response prefix: vLLM and SGLang
    then continue that assistant turn instead of opening a new one. ``{}`` otherwise."""
    if isinstance(prompt, list) and prompt and prompt[-1].get("role") == "assistant":
        return {"continue_final_message": True, "add_generation_prompt": False}
    return {}


def check_prefix_support(prompts: list[StylePrompt], server_type: str, api: str) -> None:
    """Refuse, before any request, a response prefix the server cannot continue."""
    with_prefix = [p.style for p in prompts if p.response_prefix]
    if not with_prefix or api != "chat":
        return
    if server_type not in CHAT_CONTINUATION_SERVERS:
        raise UserError(
            f"the prompt of {with_prefix[0]} sets {RESPONSE_PREFIX}, which server.type="
            f"{server_type} cannot continue through the chat API; use server.api=completions "
            "(the prefix is then written after the chat template's assistant header)"
        )
    if server_type == "openai":
        log.warning(
            "%s is sent as a final assistant message with continue_final_message=true; the "
            "endpoint must accept that (vLLM and SGLang do), else use server.api=completions",
            RESPONSE_PREFIX,
        )


def builtin_prompt_path(style: str) -> Path:
    """The packaged prompt file for a style; an unknown style is a user error."""
    if style not in ALL_STYLES:
        raise UserError(f"unknown style {style!r}; choose one of: {', '.join(ALL_STYLES)}, all")
    return BUILTIN_PROMPT_DIR / f"{style}.yaml"


def _read(source: Path) -> dict[str, Any]:
    try:
        data: Any = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as err:
        raise UserError(f"cannot read prompt file {source}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise UserError(f"prompt file {source} is not valid YAML: {err}".splitlines()[0]) from None
    if not isinstance(data, dict) or not isinstance(data.get("user"), str):
        raise UserError(f"prompt file {source} needs a 'user:' template with a {{context}} field")
    return data


def _check_keys(source: Path, data: dict[str, Any]) -> None:
    for key in data:
        if key not in ACCEPTED_KEYS:
            raise UserError(
                f"prompt file {source}: unknown key {key!r} (NeMo-Skills prompt configs take "
                f"{', '.join(NEMO_SKILLS_KEYS)}; mind_nemo adds {RESPONSE_PREFIX})"
            )
    for key in ("system", RESPONSE_PREFIX):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise UserError(f"prompt file {source}: '{key}' must be text")
    few_shot = data.get("few_shot_examples")
    if few_shot is None:
        return
    if not isinstance(few_shot, dict):
        raise UserError(f"prompt file {source}: 'few_shot_examples' must be a mapping")
    for key, value in few_shot.items():
        if key not in FEW_SHOT_KEYS:
            raise UserError(f"prompt file {source}: unknown key 'few_shot_examples.{key}'")
        if key in FEW_SHOT_SOURCES and value is not None:
            raise UserError(
                f"prompt file {source}: few_shot_examples.{key} fetches few-shot examples, "
                "which mind_nemo does not (its prompts are zero-shot, like the paper's); "
                "remove it, and {examples} renders empty as in NeMo-Skills without examples"
            )


def _check_placeholders(source: Path, user: str) -> None:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(user) if name is not None]
    except ValueError as err:
        raise UserError(
            f"prompt file {source}: bad template ({err}); write literal braces as {{{{ and }}}}"
        ) from None
    for name in fields:
        if name not in PLACEHOLDERS:
            raise UserError(
                f"prompt file {source}: bad placeholder {{{name}}}; only "
                f"{{{CONTEXT_FIELD}}} and {{{EXAMPLES_FIELD}}} are filled "
                "(write literal braces as {{ and }})"
            )
    if CONTEXT_FIELD not in fields:
        raise UserError(
            f"prompt file {source}: the 'user' template has no {{{CONTEXT_FIELD}}} placeholder"
        )


def load_prompt(style: str, path: str | Path | None = None) -> StylePrompt:
    """Load and validate the prompt for ``style`` (from ``path`` when given)."""
    source = Path(path) if path else builtin_prompt_path(style)
    data = _read(source)
    _check_keys(source, data)
    _check_placeholders(source, data["user"])
    prefix = data.get(RESPONSE_PREFIX) or ""
    return StylePrompt(style, data["user"], data.get("system"), str(source), prefix)
