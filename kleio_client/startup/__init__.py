"""The directory a trial's supervisor puts first on the trial's ``PYTHONPATH``.

It holds one module, ``sitecustomize``, which Python's ``site`` imports at the start of
every interpreter that finds it (the trial, and the Python processes it starts with its
environment): it installs the TensorBoard capture, then runs the ``sitecustomize`` it
hides, if any.  This package's ``__init__`` is for the supervisor (``python_path``);
the trial never imports it.
"""

from __future__ import annotations

import os

DIRECTORY = os.path.dirname(os.path.abspath(__file__))


def python_path(inherited: str | None, capture: bool) -> str | None:
    """The trial's ``PYTHONPATH``: this directory first when ``capture``, then the
    inherited entries as they were (an enclosing trial's copy of this directory dropped,
    so a nested ``kleio`` decides for itself); None when nothing is left."""
    entries = [e for e in inherited.split(os.pathsep) if e != DIRECTORY] if inherited else []
    if capture:
        entries.insert(0, DIRECTORY)
    return os.pathsep.join(entries) if entries else None
