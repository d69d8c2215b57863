"""What every export target returns, and the refusal it raises."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import InputError


class ExportRefused(InputError):
    """The target format cannot express the training template (exit 2, nothing written); the message says
    what the user can do instead."""


@dataclass(frozen=True)
class Artifact:
    """A candidate deploy artifact: its text, the file name the deploy renderer reads it as, and the deploy
    spec kind that renders it (``hf``, ``ollama``, ``lmdeploy``) with ``deploy_options`` (e.g. ``,eog=off``)."""

    text: str
    filename: str
    deploy_kind: str
    deploy_options: str = ""
