"""Import XTuner's template code without its package ``__init__`` files.

``import xtuner`` runs ``xtuner/__init__.py`` (the CLI entry point), and ``xtuner.dataset`` /
``xtuner.utils`` import datasets, deepspeed-era model code and torchvision for LLaVA — none of which
``PROMPT_TEMPLATE``, ``template_map_fn`` or ``encode_fn`` touch. So the harness registers the three
packages as bare modules (``__path__`` set to the installed directories, nothing executed) and then imports
the real files: ``xtuner/utils/constants.py``, ``xtuner/utils/templates.py`` (needs
``mmengine.config.ConfigDict``: mmengine-lite), ``xtuner/dataset/utils.py`` (``encode_fn``; numpy, pillow,
requests) and ``xtuner/dataset/map_fns/template_map_fn.py``. The bare ``xtuner.utils`` gets the names
``encode_fn`` imports from it (the constants and ``PROMPT_TEMPLATE``). If the real packages are already
imported, they are used as they are.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.errors import InputError

INSTALL = ("install it with `pip install --no-deps -r requirements-engines.txt` (mmengine-lite) then "
           "`pip install --no-deps -r requirements-xtuner.txt`")


@dataclass(frozen=True)
class XTuner:
    """The real XTuner objects the renderer uses."""

    version: str
    prompt_template: Any  # mmengine ConfigDict of template dicts
    encode_fn: Callable[..., dict[str, list[int]]]
    template_map_fn: Callable[..., dict[str, Any]]
    get_bos_eos_token_ids: Callable[[Any], tuple[list[int], list[int]]]
    ignore_index: int
    source: str  # the directory the modules were loaded from


def _bare(name: str, path: Path) -> None:
    if name in sys.modules:
        return
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=True)
    module.__spec__.submodule_search_locations = [str(path)]
    module.__file__ = None
    sys.modules[name] = module


_CACHE: list[XTuner] = []


def load() -> XTuner:
    """The real XTuner template code (cached). InputError with the install line when it is missing."""
    if _CACHE:
        return _CACHE[0]
    try:
        spec = importlib.util.find_spec("xtuner")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"xtuner cannot be imported (not installed); {INSTALL}")
    root = Path(list(spec.submodule_search_locations)[0])
    try:
        _bare("xtuner", root)
        _bare("xtuner.utils", root / "utils")
        _bare("xtuner.dataset", root / "dataset")
        _bare("xtuner.dataset.map_fns", root / "dataset" / "map_fns")
        constants = importlib.import_module("xtuner.utils.constants")
        templates = importlib.import_module("xtuner.utils.templates")
        utils_pkg = sys.modules["xtuner.utils"]
        for name in ("IGNORE_INDEX", "IMAGE_TOKEN_INDEX", "DEFAULT_IMAGE_TOKEN"):
            if not hasattr(utils_pkg, name):
                setattr(utils_pkg, name, getattr(constants, name))
        if not hasattr(utils_pkg, "PROMPT_TEMPLATE"):
            utils_pkg.PROMPT_TEMPLATE = templates.PROMPT_TEMPLATE
        dataset_utils = importlib.import_module("xtuner.dataset.utils")
        map_fn = importlib.import_module("xtuner.dataset.map_fns.template_map_fn")
    except ImportError as exc:
        raise InputError(f"xtuner's template code cannot be imported ({exc}); {INSTALL}") from None
    try:
        version = importlib.metadata.version("xtuner")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    out = XTuner(version, templates.PROMPT_TEMPLATE, dataset_utils.encode_fn, map_fn.template_map_fn,
                 dataset_utils.get_bos_eos_token_ids, constants.IGNORE_INDEX, str(root))
    _CACHE.append(out)
    return out
