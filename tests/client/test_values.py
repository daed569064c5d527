"""What log_statistic accepts, converts and refuses, at the call."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kleio_client import Logger
from kleio_client.values import normalize_record


def test_positional_arguments_are_refused_with_the_reason():
    with pytest.raises(TypeError, match="keyword arguments only"):
        Logger({}).log_statistic({"loss": 1.0})


def test_unsupported_values_name_the_key_and_the_type():
    with pytest.raises(TypeError, match=r"cannot log model=.*type builtins.object"):
        normalize_record({"model": object()})
    with pytest.raises(TypeError, match=r"cannot log w=.*numpy.ndarray"):
        normalize_record({"w": np.zeros(3)})
    with pytest.raises(TypeError, match="dict keys must be str"):
        normalize_record({"d": {1: 2}})
    with pytest.raises(ValueError, match="64 bits"):
        normalize_record({"big": 2**80})


def test_numpy_scalars_and_plain_subclasses_are_converted():
    record = normalize_record(
        {
            "a": np.float32(0.5),
            "b": np.int64(3),
            "c": np.array(2.0),
            "d": np.bool_(True),
            "t": (1, 2),
        }
    )
    assert record == {"a": 0.5, "b": 3, "c": 2.0, "d": True, "t": [1, 2]}
    assert all(type(v) in (float, int, bool, list) for v in record.values())


def test_nan_and_inf_are_kept():
    record = normalize_record({"n": float("nan"), "i": -math.inf})
    assert math.isnan(record["n"]) and record["i"] == -math.inf


def test_outside_kleio_the_logger_is_inert(capsys):
    logger = Logger({})
    assert logger.trial_id is None
    logger.log_statistic(epoch=1, acc=0.9)
    assert logger.load_artifact("x") is None
    assert capsys.readouterr().err == "[kleio] epoch=1 acc=0.9\n"
    with pytest.raises(TypeError):
        logger.log_statistic(epoch=object())
