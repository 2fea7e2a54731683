"""One plug-in per model: ``eval/models/<model>.py`` defines ``PLUGIN``, found by the model's catalogue name.

A plug-in is everything the layers above the implementations need to know about one model: its ``[model]``
section (the implementation's config and the recipe around it), its inputs (initial weights and batch
order), its training loop, scores, samples, statistics and timing, and what its report draws. The worker,
``prepare``, the harness and the renderer ask the plug-in and never which model they run.
"""

from __future__ import annotations

import importlib
import importlib.util

from eval.models.base import ModelPlugin


def plugin(kind: str) -> ModelPlugin:
    """The plug-in of model ``kind`` (``eval/models/<kind>.py``'s ``PLUGIN``)."""
    if importlib.util.find_spec(f"eval.models.{kind}") is None:
        raise KeyError(f"model {kind!r} has no plug-in; add eval/models/{kind}.py")
    return importlib.import_module(f"eval.models.{kind}").PLUGIN


__all__ = ["ModelPlugin", "plugin"]
