"""The command line parsed into arguments and options, typed where unambiguous."""

from __future__ import annotations

from kleio_cli.capture.configuration import parse_arguments, typed


def test_options_flags_and_repeats():
    parsed = parse_arguments(
        [
            "data.csv",
            "--lr",
            "0.1",
            "--epochs=5",
            "--fast",
            "--tag",
            "a",
            "--tag",
            "b",
            "-v",
            "--neg",
            "-1e-3",
            "--",
            "--raw",
        ]
    )
    assert parsed == {
        "positional": ["data.csv", "--raw"],
        "options": {
            "--lr": 0.1,
            "--epochs": 5,
            "--fast": True,
            "--tag": ["a", "b"],
            "-v": True,
            "--neg": -0.001,
        },
    }


def test_values_are_typed_only_where_unambiguous():
    assert [typed(v) for v in ["3", "-2", "0.5", "1e-4", "true", "False", "nan", "1.2.3", "x"]] == [
        3,
        -2,
        0.5,
        1e-4,
        True,
        False,
        "nan",
        "1.2.3",
        "x",
    ]
