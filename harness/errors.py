"""One error hierarchy. Every message names the offending value and the remedy, e.g.

``spec='hff:.' (type=str): unknown kind 'hff'; use one of hf, jinja``.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose. The CLI maps it to exit 2."""


class InputError(HarnessError):
    """A user input (file, directory, option value) cannot be used."""


class SpecError(InputError):
    """A spec string (``KIND:ARG[,key=value]``) is malformed or names an unknown kind."""


class ConversationError(InputError):
    """A conversation is not valid OpenAI chat JSON or breaks the harness's shape rules."""


class TemplateError(InputError):
    """A template does not parse, loops past its time limit, or touches what the sandbox forbids."""


class TokenizerError(InputError):
    """A tokenizer cannot be loaded, or its ids disagree with the raw ``tokenizers`` ids."""


class ZooError(InputError):
    """A zoo model is unknown, its package is missing, or its file fails the sha256 check."""


class RenderRejected(HarnessError):
    """A template refused a conversation (``raise_exception``). A finding, not an input error."""

    def __init__(self, side: str, message: str) -> None:
        super().__init__(f"{side} template rejected the conversation: {message}")
        self.side = side
        self.reason = message
