"""Serving engines' output parsers (tool calls, reasoning), behind one small contract (``parsers.base``)."""

from harness.parsers.base import ParsedCall, ParsedOutput, ReasoningParser, ToolParser

__all__ = ["ParsedCall", "ParsedOutput", "ReasoningParser", "ToolParser"]
