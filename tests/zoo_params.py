"""The zoo architectures the model tests run, at input sizes that keep the suite quick (full size: -m slow)."""

from __future__ import annotations

import pytest

TEST_SIZES = {  # zoo name -> build options
    "mobilenet_v2": {"size": 96},
    "mobilenet_v3_small": {"size": 96},
    "resnet50": {"size": 96},
    "efficientnet_b0": {"size": 96},
    "densenet121": {"size": 96},
    "inception_v3": {"size": 75},
    "transformer_encoder": {},
    "lstm_classifier": {},
    "gru_classifier": {},
    "unet": {},
    "small_cnn": {},
}
SLOW = {"resnet50", "efficientnet_b0", "densenet121", "inception_v3"}  # the big CNNs: marked slow
VOCAB = {"transformer_encoder": 1000, "lstm_classifier": 500, "gru_classifier": 500}  # token ids stay below these


def arch_params() -> list:
    """``(name, build options)`` for ``pytest.mark.parametrize``, the big CNNs marked slow."""
    return [pytest.param(name, kwargs, id=name, marks=[pytest.mark.slow] if name in SLOW else [])
            for name, kwargs in TEST_SIZES.items()]
