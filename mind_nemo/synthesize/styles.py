"""Style prompts as data: YAML files in NeMo-Skills prompt-config form.

A prompt config has a ``user`` template with a ``{context}`` placeholder and an optional
``system`` text. The built-in ones live in ``mind_nemo/synthesize/prompts/<style>.yaml``; a
user's own file is passed with ``style.prompt_file=PATH``. Rendering is Python ``str.format``,
the same as NeMo-Skills, so literal braces in a template are written ``{{`` and ``}}``; braces
inside the context itself (LaTeX!) are values and need no escaping.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mind_nemo.core.errors import UserError
from mind_nemo.core.records import text_hash
from mind_nemo.core.styles import ALL_STYLES

BUILTIN_PROMPT_DIR = Path(__file__).parent / "prompts"


@dataclass(frozen=True)
class StylePrompt:
    """A loaded, validated prompt template for one style."""

    style: str
    user: str
    system: str = ""
    source: str = ""

    def messages(self, context: str) -> list[dict[str, str]]:
        """Chat messages for one context: optional system turn, then the rendered user turn."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": self.user.format(context=context)})
        return messages

    def fingerprint(self) -> str:
        """Hash of the template, so a run can tell if its prompts changed between sessions."""
        return text_hash(f"{self.system}\x00{self.user}")


def builtin_prompt_path(style: str) -> Path:
    """The packaged prompt file for a style; an unknown style is a user error."""
    if style not in ALL_STYLES:
        raise UserError(f"unknown style {style!r}; choose one of: {', '.join(ALL_STYLES)}, all")
    return BUILTIN_PROMPT_DIR / f"{style}.yaml"


def load_prompt(style: str, path: str | Path | None = None) -> StylePrompt:
    """Load and validate the prompt for ``style`` (from ``path`` when given)."""
    source = Path(path) if path else builtin_prompt_path(style)
    try:
        data: Any = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as err:
        raise UserError(f"cannot read prompt file {source}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise UserError(f"prompt file {source} is not valid YAML: {err}".splitlines()[0]) from None
    if not isinstance(data, dict) or not isinstance(data.get("user"), str):
        raise UserError(f"prompt file {source} needs a 'user:' template with a {{context}} field")
    prompt = StylePrompt(style, data["user"], str(data.get("system") or ""), str(source))
    try:
        rendered = prompt.messages("\x00CONTEXT\x00")[-1]["content"]
    except (KeyError, IndexError, ValueError) as err:
        raise UserError(
            f"prompt file {source}: bad placeholder {err}; only {{context}} is filled "
            "(write literal braces as {{ and }})"
        ) from None
    if "\x00CONTEXT\x00" not in rendered:
        raise UserError(f"prompt file {source}: the 'user' template has no {{context}} placeholder")
    return prompt
