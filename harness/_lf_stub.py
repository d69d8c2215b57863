"""Make LLaMA-Factory's template code importable on a CPU-only, text-only install.

``llamafactory.data.template`` imports ``mm_plugin``, which does ``import torchaudio`` at module level
although templates never touch audio. torchaudio is a large wheel pinned to one torch build, so the
harness installs a stub module in its place — only when the real one is not importable. The stub has
a real ``importlib.machinery.ModuleSpec`` because transformers and datasets probe optional packages
with ``importlib.util.find_spec`` (which raises ``ValueError`` on a module whose ``__spec__`` is None).
Any attribute use raises an ImportError that says what happened.

``DISABLE_VERSION_CHECK=1`` is set before import: LLaMA-Factory 0.9.5 pins ``transformers<=5.6.0``
(the range that mis-tokenises DeepSeek), but its template code runs unchanged on 5.23.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import types

STUBBED: list[str] = []


class _Stub(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(f"{self.__name__} is a harness stub (audio is not needed for chat templates); "
                          f"install the real {self.__name__} to use {self.__name__}.{name}")


def _stub(name: str) -> None:
    if name in sys.modules:
        return
    try:
        if importlib.util.find_spec(name) is not None:
            return
    except (ImportError, ValueError):
        pass
    module = _Stub(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
    module.__file__ = None
    module.__version__ = "0.0.0+harness-stub"
    sys.modules[name] = module
    STUBBED.append(name)


def prepare() -> None:
    """Set the env LLaMA-Factory needs and stub what it imports but templates never use."""
    os.environ.setdefault("DISABLE_VERSION_CHECK", "1")
    _stub("torchaudio")
