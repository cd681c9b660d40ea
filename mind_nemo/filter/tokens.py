"""Generator-tokenizer counts, loaded only when a row needs one.

Most rows carry the server's ``completion_tokens``; we count ourselves only when that is
missing or the filter changed the text (a stripped preamble, normalised labels). The tokenizer
is the run's generator tokenizer (``server.tokenizer`` or ``server.model`` of the synthesize
config; ``tokenizer=NAME`` overrides), loaded on first use.
"""

from __future__ import annotations

from typing import Any

from mind_nemo.core.errors import UserError


class TokenCounter:
    def __init__(self, name: str | None) -> None:
        self.name = name
        self._tokenizer: Any = None
        self.counted = 0

    def __call__(self, text: str) -> int:
        if self._tokenizer is None:
            if not self.name:
                raise UserError(
                    "cannot tell which tokenizer generated this run (no config.yaml); "
                    "set tokenizer=NAME"
                )
            from mind_nemo.servers.embedded_model import load_tokenizer

            self._tokenizer = load_tokenizer(self.name)
        self.counted += 1
        return len(self._tokenizer.encode(text, add_special_tokens=False))
