"""Serving engines' output parsers (tool calls, reasoning), behind one small contract (``parsers.base``);
``parsers.registry`` builds the real vLLM / LLaMA-Factory ones by name."""

from harness.parsers.base import ParsedCall, ParsedOutput, ReasoningParser, ToolParser
from harness.parsers.registry import (
    REASONING_PARSER_NAMES, TOOL_PARSER_NAMES, build_reasoning_parser, build_tool_parser,
)

__all__ = ["REASONING_PARSER_NAMES", "TOOL_PARSER_NAMES", "ParsedCall", "ParsedOutput", "ReasoningParser",
           "ToolParser", "build_reasoning_parser", "build_tool_parser"]
