"""Kleio for training code that uses a framework, one module per framework:

* ``kleio_client.integrations.lightning``: ``KleioLogger``, a PyTorch Lightning logger
  (``pip install 'kleio[lightning]'``);
* ``kleio_client.integrations.transformers``: ``KleioCallback``, a Hugging Face Trainer
  callback (``pip install 'kleio[transformers]'``);
* ``kleio_client.integrations.keras``: ``KleioCallback``, a Keras callback
  (``pip install 'kleio[keras]'``);
* ``kleio_client.integrations.tensorboard``: what makes ``SummaryWriter`` scalars
  statistics under ``kleio``, with no change to the script (installed by the trial's
  start-up hook, ``kleio_client.startup``).

This package imports no framework: each module imports its own (through
:func:`framework`), and only when it is imported itself; ``kleio_client`` never does.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def framework(name: str, needed_by: str, title: str) -> ModuleType:
    """The module ``name`` of a framework, imported; else the one-line ImportError that
    names the extra to install (``kleio[name]``).  A module missing inside an installed
    framework is its own error, raised as it is."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != name.split(".")[0]:
            raise
        extra = name.split(".")[0]
        raise ImportError(
            f"{needed_by} needs {title}, which is not installed: pip install 'kleio[{extra}]'"
        ) from None
