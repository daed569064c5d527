"""Fingerprints of code and environment, taken from captures with the fields in force, and
the phrases that say what changed between two captures."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kleiod import fingerprint
from kleiod.fingerprint import CODE_FIELDS, ENVIRONMENT_FIELDS, Fields

DEFAULT = Fields()


def _capture(**changes: Any) -> dict[str, Any]:
    """A capture as the CLI takes it in a git checkout; ``changes`` replace code or
    environment fields (``code_commit="b" * 40``, ``env_hostname="h2"``)."""
    capture: dict[str, Any] = {
        "code": {"git": True, "root": "/repo", "commit": "a" * 40, "patch": "", "untracked": []},
        "environment": {
            "python": {"version": "3.11.4"},
            "os": "Linux",
            "architecture": "x86_64",
            "hostname": "h1",
            "user": "u",
            "gpus": [{"model": "A100"}],
            "variables": {"HOME": "/home/u"},
            "kleio": "1.0",
            "packages": {"numpy": {"version": "1.26"}},
        },
        "resources": {},
    }
    for name, value in changes.items():
        part, field = name.split("_", 1)
        capture["code" if part == "code" else "environment"][field] = value
    return capture


def _untracked(path: str, sha256: str, kind: str = "code") -> dict[str, Any]:
    return {"path": path, "sha256": sha256, "kind": kind, "mtime": 1.0}


def _patch(*files: tuple[str, str]) -> str:
    return "".join(f"diff --git a/{name} b/{name}\n+{line}\n" for name, line in files)


def test_equal_captures_have_equal_fingerprints_whatever_their_key_order():
    capture = _capture(env_packages={"numpy": {"version": "1.26"}, "torch": {"version": "2.1"}})
    reordered = copy.deepcopy(capture)
    reordered["environment"]["packages"] = dict(
        reversed(reordered["environment"]["packages"].items())
    )
    assert fingerprint.fingerprints(capture, DEFAULT) == fingerprint.fingerprints(
        reordered, DEFAULT
    )
    code, environment = fingerprint.fingerprints(capture, DEFAULT)
    assert len(code) == len(environment) == 64 and code != environment


@pytest.mark.parametrize(
    "field, value",
    [
        ("env_hostname", "h2"),
        ("env_user", "v"),
        ("env_gpus", [{"model": "H100"}]),
        ("env_variables", {"HOME": "/home/v"}),
        ("env_kleio", "2.0"),
        ("env_cpu", {"model": "other", "count": 64}),
    ],
)
def test_what_is_recorded_but_not_fingerprinted_by_default(field: str, value: Any):
    old, new = _capture(), _capture(**{field: value})
    assert fingerprint.fingerprints(old, DEFAULT) == fingerprint.fingerprints(new, DEFAULT)
    assert fingerprint.describe_environment(old, new, DEFAULT) == []


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("hostname", "h2", "hostname h1 -> h2"),
        ("user", "v", "user u -> v"),
        ("gpu", [{"model": "H100"}], "gpu ['A100'] -> ['H100']"),
        ("variables", {"HOME": "/home/v", "LANG": "C"}, "variable LANG C added"),
    ],
)
def test_optional_environment_fields_count_once_chosen(field: str, value: Any, says: str):
    chosen = Fields(environment=ENVIRONMENT_FIELDS + (field,))
    old, new = _capture(), _capture(**{"env_" + ("gpus" if field == "gpu" else field): value})
    assert fingerprint.fingerprints(old, chosen)[1] != fingerprint.fingerprints(new, chosen)[1]
    assert says in fingerprint.describe_environment(old, new, chosen)


def test_kleio_and_the_project_s_own_editable_install_are_not_packages():
    capture = _capture(
        env_packages={
            "kleio": {"version": "1.0"},
            "numpy": {"version": "1.26"},
            "myproject": {"version": "0.1", "editable": "file:///repo/src"},
            "lib": {"version": "0.2", "editable": "file:///elsewhere/lib"},
        }
    )
    assert fingerprint.packages(capture) == {"numpy": "1.26", "lib": "0.2"}


def test_an_editable_install_beside_the_project_is_a_package():
    capture = _capture(
        env_packages={"tools": {"version": "0.3", "editable": "file:///repo-tools/src"}}
    )
    assert fingerprint.packages(capture) == {"tools": "0.3"}


def test_environment_changes_are_described():
    old = _capture(env_packages={"numpy": {"version": "1.26"}, "scipy": {"version": "1.11"}})
    new = _capture(
        env_python={"version": "3.12.1"},
        env_architecture="aarch64",
        env_packages={"numpy": {"version": "2.0"}, "torch": {"version": "2.1"}},
    )
    assert fingerprint.describe_environment(old, new, DEFAULT) == [
        "python 3.11.4 -> 3.12.1",
        "os Linux x86_64 -> Linux aarch64",
        "torch 2.1 added",
        "scipy 1.11 removed",
        "numpy 1.26 -> 2.0",
    ]


def test_resources_are_environment_and_are_named_without_hashes():
    old, new = _capture(), _capture()
    old["resources"] = {"data.csv": "1" * 64, "old.bin": "2" * 64}
    new["resources"] = {"data.csv": "3" * 64, "new.bin": "4" * 64}
    assert fingerprint.fingerprints(old, DEFAULT)[0] == fingerprint.fingerprints(new, DEFAULT)[0]
    assert fingerprint.describe_environment(old, new, DEFAULT) == [
        "resource new.bin added",
        "resource old.bin removed",
        "resource data.csv changed",
    ]


def test_code_changes_are_described():
    old = _capture(
        code_patch=_patch(("a.py", "x"), ("b.py", "y")),
        code_untracked=[_untracked("gone.py", "1"), _untracked("kept.py", "2")],
    )
    new = _capture(
        code_commit="b" * 40,
        code_patch=_patch(("a.py", "x"), ("b.py", "z")),
        code_untracked=[_untracked("kept.py", "3"), _untracked("new.py", "4")],
    )
    assert fingerprint.fingerprints(old, DEFAULT)[1] == fingerprint.fingerprints(new, DEFAULT)[1]
    assert fingerprint.describe_code(old, new, DEFAULT) == [
        "commit aaaaaaa -> bbbbbbb",
        "uncommitted changes in b.py",
        "untracked file new.py added",
        "untracked file gone.py removed",
        "untracked file kept.py changed",
    ]


def test_a_patch_that_names_no_file_is_still_a_change():
    old, new = _capture(), _capture(code_patch="Binary files differ\n")
    assert fingerprint.describe_code(old, new, DEFAULT) == ["uncommitted changes in no file"]


def test_untracked_configuration_counts_only_once_chosen():
    old = _capture(code_untracked=[_untracked("cfg.yaml", "1", kind="config")])
    new = _capture(code_untracked=[_untracked("cfg.yaml", "2", kind="config")])
    assert fingerprint.fingerprints(old, DEFAULT) == fingerprint.fingerprints(new, DEFAULT)
    chosen = Fields(code=CODE_FIELDS + ("untracked_config",))
    assert fingerprint.describe_code(old, new, chosen) == ["untracked file cfg.yaml changed"]


def test_outside_git_the_script_s_content_is_the_code():
    old = {"code": {"git": False, "script": "/x/t.py", "sha256": "1" * 64}}
    new = {"code": {"git": False, "script": "/y/t.py", "sha256": "2" * 64}}
    assert fingerprint.describe_code(old, new, DEFAULT) == ["the script's content changed"]
    moved = {"code": {**old["code"], "script": "/elsewhere/t.py"}}
    assert fingerprint.fingerprints(old, DEFAULT) == fingerprint.fingerprints(moved, DEFAULT)


def test_fields_left_out_never_count():
    """Chosen at comparison time: a trial stored with other fields in force still resumes."""
    nothing = Fields(code=(), environment=())
    old, new = _capture(), _capture(code_commit="b" * 40, env_python={"version": "3.13"})
    assert fingerprint.fingerprints(old, nothing) == fingerprint.fingerprints(new, nothing)
    assert fingerprint.describe_code(old, new, nothing) == []
    assert fingerprint.describe_environment(old, new, nothing) == []


def test_fields_come_from_the_wire_with_defaults_for_what_is_missing():
    assert Fields.from_wire(None) == Fields()
    assert Fields.from_wire({"code": ["commit"]}) == Fields(("commit",), ENVIRONMENT_FIELDS)
    assert Fields.from_wire({"environment": ["python", "gpu"]}) == Fields(
        CODE_FIELDS, ("python", "gpu")
    )


def _ran(capture: dict[str, Any], **files: str | None) -> dict[str, Any]:
    """The capture with the files its trial ran (``model_py="1" * 64``: model.py)."""
    return {**capture, "imported": {k.replace("_", "."): v for k, v in files.items()}}


def test_by_default_the_code_is_the_content_of_the_files_the_trial_ran():
    old = _ran(_capture(), train_py="1" * 64, model_py="2" * 64)
    elsewhere = _ran(
        _capture(code_commit="b" * 40, code_patch=_patch(("notes.md", "x"))),
        train_py="1" * 64,
        model_py="2" * 64,
    )
    assert fingerprint.fingerprints(old, DEFAULT) == fingerprint.fingerprints(elsewhere, DEFAULT)
    assert fingerprint.describe_code(old, elsewhere, DEFAULT) == []
    edited = _ran(_capture(), train_py="1" * 64, model_py="3" * 64)
    assert fingerprint.fingerprints(old, DEFAULT)[0] != fingerprint.fingerprints(edited, DEFAULT)[0]
    assert fingerprint.describe_code(old, edited, DEFAULT) == ["file model.py changed"]


def test_a_file_the_trial_ran_missing_now_is_named():
    old = _ran(_capture(), train_py="1" * 64, model_py="2" * 64)
    gone = _ran(_capture(), train_py="1" * 64, model_py=None)
    assert fingerprint.describe_code(old, gone, DEFAULT) == ["file model.py removed"]


def test_a_trial_that_reported_nothing_is_compared_by_commit_patch_and_untracked():
    old, new = _capture(), _capture(code_commit="b" * 40, code_patch=_patch(("notes.md", "x")))
    assert fingerprint.code_view(old, DEFAULT).keys() == {"commit", "patch", "untracked"}
    assert fingerprint.describe_code(old, new, DEFAULT) == [
        "commit aaaaaaa -> bbbbbbb",
        "uncommitted changes in notes.md",
    ]
    # one side's report alone does not count: the two are compared alike
    assert fingerprint.describe_code(_ran(old, train_py="1" * 64), new, DEFAULT) == [
        "commit aaaaaaa -> bbbbbbb",
        "uncommitted changes in notes.md",
    ]


def test_the_fallback_is_the_same_view_as_the_strict_rule():
    """A trial stored before reports existed keeps its branch ids: the same digest."""
    strict = Fields(code=("commit", "patch", "untracked"))
    capture = _capture(code_patch=_patch(("a.py", "x")), code_untracked=[_untracked("h.py", "1")])
    assert fingerprint.fingerprints(capture, DEFAULT) == fingerprint.fingerprints(capture, strict)


def test_the_strict_rule_ignores_what_the_trial_ran():
    strict = Fields(code=("commit", "patch", "untracked"))
    old = _ran(_capture(), train_py="1" * 64)
    new = _ran(_capture(code_commit="b" * 40), train_py="1" * 64)
    assert fingerprint.describe_code(old, new, strict) == ["commit aaaaaaa -> bbbbbbb"]


def test_untracked_configuration_counts_beside_the_files_ran_once_chosen():
    chosen = Fields(code=("imported", "untracked_config"))
    old = _ran(_capture(code_untracked=[_untracked("cfg.yaml", "1", "config")]), t_py="1" * 64)
    new = _ran(_capture(code_untracked=[_untracked("cfg.yaml", "2", "config")]), t_py="1" * 64)
    assert fingerprint.describe_code(old, new, DEFAULT) == []
    assert fingerprint.describe_code(old, new, chosen) == ["untracked file cfg.yaml changed"]


@pytest.mark.parametrize(
    "chosen, reported, counted",
    [
        (("imported",), True, {"imported"}),
        (("imported",), False, {"commit", "patch", "untracked"}),
        (("imported", "commit"), False, {"commit"}),
        (("imported", "untracked_config"), True, {"imported", "untracked_config"}),
        (("commit", "patch"), True, {"commit", "patch"}),
        ((), True, set()),
    ],
)
def test_which_code_fields_count(chosen, reported, counted):
    assert fingerprint.counted_code_fields(Fields(code=chosen), reported) == counted


def test_diff_compares_the_files_they_ran_and_their_part_of_the_patches():
    from kleiod.diff import compare

    a = _ran(_capture(code_patch=_patch(("model.py", "a"), ("notes.md", "a"))), model_py="1" * 64)
    b = _ran(_capture(code_patch=_patch(("model.py", "b"), ("notes.md", "b"))), model_py="2" * 64)
    code = compare(a, b, ("a", "b"))["code"]
    assert code["changes"] == ["file model.py changed"]
    assert code["imported"] == ["model.py"]
    assert "+b" in code["patch"] and "notes.md" not in code["patch"]
    unreported = compare({**a, "imported": None}, b, ("a", "b"))["code"]
    assert unreported["changes"] == ["uncommitted changes in model.py, notes.md"]
    assert unreported["imported"] is None and "notes.md" in unreported["patch"]
