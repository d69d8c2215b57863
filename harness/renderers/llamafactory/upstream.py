"""LLaMA-Factory itself, imported lazily (its import costs ~4 s): ``llamafactory.data.template`` and its names."""

from __future__ import annotations

from typing import Any

from harness.errors import InputError


def import_llamafactory() -> Any:
    """``llamafactory.data.template`` (lazily; ~4 s the first time). InputError with the install line if missing."""
    from harness._lf_stub import prepare

    prepare()
    try:
        import llamafactory
        import llamafactory.data.processor.supervised  # noqa: F401
        import llamafactory.data.template as template
    except ImportError as exc:
        raise InputError(f"llamafactory cannot be imported ({exc}); install it with `pip install torch==2.13.0` then "
                         "`pip install --no-deps -r requirements-llamafactory.txt`") from None
    template.VERSION = llamafactory.__version__
    return template


def known_templates() -> list[str]:
    """Every registered LLaMA-Factory template name (``harness.calibrate`` sweeps them)."""
    return sorted(import_llamafactory().TEMPLATES)
