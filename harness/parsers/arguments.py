"""The decoded value of the arguments string an engine returns for a call (``ParsedCall.arguments``)."""

from __future__ import annotations

import json
from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_arguments(arguments: str) -> Any:
    """``ParsedCall.arguments``: the engine's arguments string as strict JSON (``NaN``/``Infinity`` are not JSON,
    a client's parser rejects them); None when it is not JSON."""
    try:
        return json.loads(arguments, parse_constant=_reject_constant)
    except (TypeError, ValueError):
        return None
