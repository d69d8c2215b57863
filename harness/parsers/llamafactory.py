"""LLaMA-Factory 0.9.5's real tool-call extractors, applied as its OpenAI API server applies them.

Rule (``llamafactory/api/chat.py``): for a request with tools, the decoded response (``skip_special_tokens=True``,
the generating default) goes to ``template.extract_tool``, i.e. ``get_tool_utils(FORMAT).tool_extractor``. A list
of ``FunctionCall(name, arguments)`` becomes the calls and the message has no content (any text around the calls
is dropped); a string (no call found, or any parse error) is returned whole as content with no calls. The server
does not separate reasoning: thought words stay in the content.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Sequence

from harness.errors import SpecError
from harness.parsers.arguments import decode_arguments as _decode
from harness.parsers.base import ParsedCall, ParsedOutput, ToolParser

if TYPE_CHECKING:
    from harness.conversation import Tool


@functools.cache
def tool_utils_module() -> Any:
    """``llamafactory.data.tool_utils`` (imported once; InputError with the install line when missing)."""
    from harness.renderers.llamafactory.upstream import import_llamafactory

    import_llamafactory()
    import llamafactory.data.tool_utils as tool_utils

    return tool_utils


def llamafactory_formats() -> tuple[str, ...]:
    """Every tool format LLaMA-Factory registers (``TOOLS``), sorted."""
    return tuple(sorted(tool_utils_module().TOOLS))


class LlamaFactoryToolParser(ToolParser):
    """``llamafactory:FORMAT``: LLaMA-Factory's own ``tool_extractor`` of that tool format."""

    skip_special_tokens = True

    def __init__(self, fmt: str) -> None:
        formats = llamafactory_formats()
        if fmt not in formats:
            raise SpecError(f"tool parser 'llamafactory:{fmt}': LLaMA-Factory has no tool format {fmt!r}; "
                            f"use one of {', '.join(formats)}")
        self.format = fmt
        self.name = f"llamafactory:{fmt}"
        self._extract = tool_utils_module().get_tool_utils(fmt).tool_extractor

    def parse(self, text: str, tools: Sequence["Tool"]) -> ParsedOutput:
        result = self._extract(text)
        if isinstance(result, str):
            return ParsedOutput((), result)
        return ParsedOutput(tuple(ParsedCall(c.name, c.arguments, _decode(c.arguments)) for c in result), None)

    def describe(self) -> dict[str, Any]:
        import llamafactory

        return {"name": self.name, "skip_special_tokens": self.skip_special_tokens,
                "llamafactory": llamafactory.__version__}
