"""Kleio's start-up hook in a trial's interpreters: TensorBoard scalars become statistics.

Python's ``site`` imports ``sitecustomize`` from the first ``sys.path`` entry that has
one; the supervisor puts this directory first on the trial's ``PYTHONPATH`` (unless
``capture_tensorboard`` is off).  Here, in a process of a trial (``KLEIO_TRIAL_ID`` set)
and nowhere else, one finder goes first on ``sys.meta_path``.  It answers for the two
modules that define a ``SummaryWriter`` (``torch.utils.tensorboard.writer``,
``tensorboardX.writer``) and no other: for those it asks the finders after it and wraps
the loader, so that once the module has run, ``kleio_client.integrations.tensorboard``
patches its ``SummaryWriter``.  Nothing is imported before then — not torch, not
tensorboard, not kleio_client — so a script that never writes TensorBoard logs pays one
set lookup per import, and this file.

Then the ``sitecustomize`` this one hides (a later ``sys.path`` entry's: a
distribution's, a site's) runs as it would have, and becomes ``sys.modules
["sitecustomize"]``.

Standard library only, and kept to the syntax of older Pythons: the trial's interpreter
may be another than Kleio's.
"""

import os
import sys

_WRITER_MODULES = frozenset({"torch.utils.tensorboard.writer", "tensorboardX.writer"})
_MARK = "_kleio_tensorboard_watch"  # one watch per process, whichever copy installed it


class _WriterWatch:
    """A ``sys.meta_path`` finder that finds nothing itself (see the module's docstring)."""

    _kleio_tensorboard_watch = True

    def find_spec(self, name, path=None, target=None):
        if name not in _WRITER_MODULES:
            return None
        for finder in sys.meta_path:
            if getattr(finder, _MARK, False) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _CapturingLoader(spec.loader)  # type: ignore[assignment]
        return spec


class _CapturingLoader:
    """The module's own loader, which then has its ``SummaryWriter`` patched."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # get_source, get_data, is_package...: the loader's own
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        writer = getattr(module, "SummaryWriter", None)
        if writer is None:
            return
        try:
            from kleio_client.integrations.tensorboard import capture
        except ImportError as exc:  # kleio_client is not installed for this interpreter
            sys.stderr.write(
                "kleio: TensorBoard scalars are not journaled: %s (install kleio in the "
                "trial's environment, or turn capture_tensorboard off)\n" % (exc,)
            )
            return
        capture(writer)


def _install():
    if not os.environ.get("KLEIO_TRIAL_ID"):
        return  # not a trial's process: a daemon or a tool started from its environment
    if any(getattr(finder, _MARK, False) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _WriterWatch())


def _run_the_hidden_sitecustomize():
    # Only the entries after this one can hold it (site made them absolute already).
    here = os.path.dirname(os.path.abspath(__file__))
    ours = [i for i, entry in enumerate(sys.path) if entry == here]
    later = sys.path[ours[0] + 1 :] if ours else sys.path
    # The PathFinder that is on sys.meta_path already: importing importlib.machinery for
    # it would cost every start a millisecond.
    finder = next((f for f in sys.meta_path if getattr(f, "__name__", "") == "PathFinder"), None)
    spec = finder.find_spec("sitecustomize", later) if finder is not None else None
    if spec is None or spec.loader is None:
        return
    from importlib.util import module_from_spec

    module = module_from_spec(spec)
    sys.modules["sitecustomize"] = module  # what `import sitecustomize` returns from now
    spec.loader.exec_module(module)


_install()
_run_the_hidden_sitecustomize()
