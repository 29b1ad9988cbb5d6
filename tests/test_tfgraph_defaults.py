"""irc's table of op attribute defaults agrees with TensorFlow's op registry."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")

from tensorflow.python.framework import op_def_registry

from irc.frontends import tfproto
from irc.frontends.tfattrs import attr_value
from irc.frontends.tfdefaults import DEFAULTS


def test_defaults_match_tensorflow():
    for op, defaults in DEFAULTS.items():
        op_def = op_def_registry.get(op)
        assert op_def is not None, op
        registered = {a.name: attr_value(tfproto.parse("AttrValue", a.default_value.SerializeToString()))
                      for a in op_def.attr if a.HasField("default_value")}
        assert defaults == registered, op
