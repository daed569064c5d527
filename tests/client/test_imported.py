"""The project's files a process imported, as its client reports them: relative to the
project root, hashed by content, each once; nothing of the standard library, of
site-packages or of an environment inside the root."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest

from kleio_client.imported import ImportedFiles, batches


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A project root on sys.path; ``write(relative path, text)`` makes a module there,
    and ``load(name)`` imports it (forgotten at the end of the test)."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    loaded: list[str] = []

    def write(relative: str, text: str = "X = 1\n") -> Path:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def load(name: str) -> types.ModuleType:
        importlib.invalidate_caches()
        loaded.append(name)
        return importlib.import_module(name)

    yield root, write, load
    for name in loaded:
        sys.modules.pop(name, None)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_project_s_modules_are_reported_relative_to_its_root_with_their_hash(project):
    root, write, load = project
    model = write("kf_model.py", "LAYERS = 2\n")
    nested = write("kf_pkg/kf_layers.py")
    write("kf_pkg/__init__.py", "")
    load("kf_model")
    load("kf_pkg.kf_layers")
    files = ImportedFiles(str(root)).unreported()
    assert files == {
        "kf_model.py": _sha(model),
        "kf_pkg/__init__.py": _sha(root / "kf_pkg" / "__init__.py"),
        "kf_pkg/kf_layers.py": _sha(nested),
    }


def test_each_file_is_reported_once_and_a_later_import_at_the_next_report(project):
    root, write, load = project
    write("kf_first.py")
    load("kf_first")
    imported = ImportedFiles(str(root))
    assert list(imported.unreported()) == ["kf_first.py"]
    assert imported.unreported() == {}
    write("kf_late.py")
    load("kf_late")
    assert list(imported.unreported()) == ["kf_late.py"]


def test_installed_code_inside_the_root_is_not_the_project_s(project, monkeypatch):
    root, write, load = project
    site = root / ".venv" / "lib" / "python3" / "site-packages"
    (site / "kf_installed.py").parent.mkdir(parents=True)
    (site / "kf_installed.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(site))
    write("env/lib/kf_stdlib_like.py")
    monkeypatch.syspath_prepend(str(root / "env" / "lib"))
    monkeypatch.setattr(sys, "prefix", str(root / "env"))  # the trial's interpreter's
    load("kf_installed")
    load("kf_stdlib_like")
    write("kf_own.py")
    load("kf_own")
    assert list(ImportedFiles(str(root)).unreported()) == ["kf_own.py"]


def test_a_project_inside_the_interpreter_s_prefix_is_still_the_project(project, monkeypatch):
    root, write, load = project
    monkeypatch.setattr(sys, "prefix", str(root.parent))  # /usr/local, and /usr/local/src/app
    write("kf_app.py")
    load("kf_app")
    assert list(ImportedFiles(str(root)).unreported()) == ["kf_app.py"]


def test_nothing_outside_the_root_is_reported(project, tmp_path):
    root, _, _ = project
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert ImportedFiles(str(elsewhere)).unreported() == {}
    files = ImportedFiles(str(root)).unreported()
    assert not [p for p in files if p.startswith("/") or ".." in p]


def test_a_lazy_module_is_not_run_and_odd_entries_are_skipped(project, monkeypatch):
    root, write, _ = project
    path = write("kf_lazy.py", "import sys\nsys.kf_lazy_ran = True\n")
    spec = importlib.util.spec_from_file_location("kf_lazy", path)
    assert spec is not None and spec.loader is not None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "kf_lazy", module)
    monkeypatch.setitem(sys.modules, "kf_not_a_module", 42)
    monkeypatch.setitem(sys.modules, "kf_none", None)
    files = ImportedFiles(str(root)).unreported()
    assert list(files) == ["kf_lazy.py"]
    assert not hasattr(sys, "kf_lazy_ran")


def test_odd_module_paths_are_judged_as_the_files_they_name(project, monkeypatch):
    root, write, _ = project
    inside = write("kf_inside.py")
    for name, path in {
        "kf_relative": os.path.relpath(inside),
        "kf_dotted": f"{root}/sub/../kf_inside.py",
        "kf_climbing": f"{root}/../kf_outside.py",
        "kf_not_text": f"{root}/kf_\udcff.py",
    }.items():
        module = types.ModuleType(name)
        module.__file__ = path
        monkeypatch.setitem(sys.modules, name, module)
    assert ImportedFiles(str(root)).unreported() == {"kf_inside.py": _sha(inside)}


def test_a_file_that_cannot_be_read_is_left_out(project):
    root, write, load = project
    path = write("kf_deleted.py")
    load("kf_deleted")
    path.unlink()
    assert ImportedFiles(str(root)).unreported() == {}


def test_reports_are_cut_in_batches():
    files = {f"m{i:02}.py": "0" * 64 for i in range(5)}
    assert [list(b) for b in batches(files, 2)] == [
        ["m00.py", "m01.py"],
        ["m02.py", "m03.py"],
        ["m04.py"],
    ]
    assert batches({}, 2) == []


def test_kleio_s_own_packages_are_not_the_trial_s_code(project):
    """A trial in a checkout of Kleio (its examples/) imports kleio_client from the root."""
    import kleio.client.logger  # noqa: F401  (the first Kleio's path, in the checkout too)
    import kleio_client.logger  # noqa: F401

    checkout = Path(kleio_client.logger.__file__).resolve().parent.parent
    reported = ImportedFiles(str(checkout)).unreported()
    assert not [p for p in reported if p.startswith(("kleio_client/", "kleio/"))], reported
