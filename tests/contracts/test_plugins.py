"""Every catalogued model has its plug-in, and a plug-in writes only the scores it declares."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import impls
from eval.contract.rows import Recorder
from eval.models import plugin


def recorder() -> Recorder:
    context = SimpleNamespace(columns=lambda: {"impl": "numpy", "model": "rbm", "seed": 0})
    return Recorder(SimpleNamespace(context=context, attempt=1))


def test_every_model_has_a_plug_in_that_names_its_curve_and_outputs():
    for name in impls.models():
        found = plugin(name)
        assert found.name == name and found.model is impls.model(name)
        assert found.curve and found.outputs and len(set(found.outputs)) == len(found.outputs)
    with pytest.raises(KeyError, match=r"has no plug-in; add eval/models/nade\.py"):
        plugin("nade")


def test_an_undeclared_score_is_refused_and_a_declared_one_passes():
    rbm = plugin("rbm")
    record = recorder()
    record.add("eval", "pl_per_unit", -0.1)
    record.add("train", "anything_per_epoch", 1.0, 1)  # curves and monitors are the plug-in's own business
    rbm.check_declared(record)
    record.add("eval", "mean_field_gap", 0.5)  # the RNN-RBM's score, not the window RBM's
    with pytest.raises(RuntimeError, match=r"the rbm plug-in writes undeclared scores \['mean_field_gap'\]"):
        rbm.check_declared(record)
