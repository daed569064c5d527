"""PyTorch Lightning: ``Trainer(logger=KleioLogger())`` journals what the Trainer logs.

::

    from kleio_client.integrations.lightning import KleioLogger

    logger = KleioLogger(log_model=True)
    trainer = Trainer(logger=logger, max_epochs=10)
    trainer.fit(model, data, ckpt_path=logger.last_checkpoint())

* ``log_metrics`` → one statistic per call: the metrics, ``step`` (Lightning's step)
  and ``epoch`` (which Lightning adds to the metrics it logs itself).
* ``log_hyperparams`` → one statistic ``{"hyperparameters": {...}}`` per call (per
  ``fit``, so one per execution of a resumed trial); values that are not numbers,
  strings, lists or dicts are stored as their ``str``.
* ``log_model=True`` → every checkpoint a ``ModelCheckpoint`` saves is stored as the
  artifact ``lightning.ckpt`` (``artifact=`` names it otherwise) with metadata
  ``step`` (that of the last statistics it covers), ``global_step``, ``epoch`` and
  ``checkpoint`` (the file's name).  The bytes are stored when the file is saved; the
  record is journaled once the statistics of the steps it covers are (Lightning saves a
  step's checkpoint before it logs that step's metrics), so that resuming from it leaves
  each step once in the effective history.  A checkpoint saved in the step that an
  interruption cut short is not journaled: its step's statistics may not be.
* :meth:`KleioLogger.last_checkpoint` loads the last journaled checkpoint (it becomes
  the execution's resume point) and returns its path, for ``fit(ckpt_path=...)``;
  None on a trial's first run and outside kleio.

Works with ``import lightning`` and ``import pytorch_lightning`` (whichever the script
imported first; else ``lightning.pytorch``, then ``pytorch_lightning``).  Without
either, importing this module raises ImportError naming the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import weakref
from argparse import Namespace
from collections.abc import Mapping
from typing import Any, NamedTuple

from kleio_client import kleio_logger

__all__ = ["KleioLogger"]

EXTRA = "pip install 'kleio[lightning]'"
_FRAMEWORKS = ("lightning.pytorch", "pytorch_lightning")


def _framework() -> tuple[Any, Any, Any]:
    """The framework's Logger and Callback classes and its ``rank_zero_only``."""
    order = _FRAMEWORKS
    if "pytorch_lightning" in sys.modules and "lightning.pytorch" not in sys.modules:
        order = order[::-1]
    for name in order:
        if importlib.util.find_spec(name.split(".")[0]) is None:
            continue  # not installed (a module missing inside it is its own error)
        loggers = importlib.import_module(f"{name}.loggers.logger")
        callbacks = importlib.import_module(f"{name}.callbacks")
        rank_zero = importlib.import_module(f"{name}.utilities.rank_zero")
        return loggers.Logger, callbacks.Callback, rank_zero.rank_zero_only
    raise ImportError(f"KleioLogger needs PyTorch Lightning, which is not installed: {EXTRA}")


_Logger: Any
_Callback: Any
_Logger, _Callback, rank_zero_only = _framework()


class _Stored(NamedTuple):
    """A checkpoint's bytes, stored, whose record waits for the statistics it covers."""

    global_step: int
    body: dict[str, Any]


class KleioLogger(_Logger):
    """A Lightning logger that journals into the trial the script runs as (see the
    module's docstring); outside kleio it prints the statistics, as ``kleio_logger``."""

    def __init__(
        self, log_model: bool = False, artifact: str = "lightning.ckpt", save_dir: str | None = None
    ) -> None:
        super().__init__()
        self._log_model = log_model
        self._artifact = artifact
        self._save_dir = save_dir
        self._waiting: list[_Stored] = []
        self._trainer: Any = None  # a weak reference, once the Trainer runs
        self._epoch: int | None = None

    # -- what Lightning asks of a logger -------------------------------------------

    @property
    def name(self) -> str:
        return "kleio"

    @property
    def version(self) -> str:
        """The trial's short id: Lightning's checkpoints go to ``kleio/<id>/checkpoints``."""
        return (kleio_logger.trial_id or "local")[:12]

    @property
    def save_dir(self) -> str | None:
        return self._save_dir

    @property
    def experiment(self) -> Any:
        """``kleio_logger``, for what the Trainer does not log (``log_artifact``...)."""
        return kleio_logger

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(params, Namespace):
            params = vars(params)
        kleio_logger.log_statistic(hyperparameters=_storable(dict(params or {})))

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if step is not None:
            self._journal_checkpoints(lambda stored: stored.global_step <= step)
        record = {str(k): _number(v) for k, v in metrics.items()}
        if step is not None:
            record["step"] = int(step)
        if isinstance(record.get("epoch"), (int, float)):
            self._epoch = int(record["epoch"])
        kleio_logger.log_statistic(**record)

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Called by the Trainer as it starts: how the logger learns its Trainer, whose
        batch boundaries tell when a checkpoint's statistics are all journaled."""
        if not self._log_model:
            return
        try:
            trainer = model.trainer
        except (AttributeError, RuntimeError):  # a module that no Trainer runs
            return
        if trainer is None:
            return
        self._trainer = weakref.ref(trainer)
        callbacks = getattr(trainer, "callbacks", None)
        if isinstance(callbacks, list) and not any(
            isinstance(c, _CheckpointsJournal) and c.logger is self for c in callbacks
        ):
            callbacks.append(_CheckpointsJournal(self))

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not self._log_model:
            return
        path = getattr(checkpoint_callback, "_last_checkpoint_saved", None) or getattr(
            checkpoint_callback, "last_model_path", None
        )
        if not path or not os.path.isfile(path):
            return
        trainer = self._trainer() if self._trainer is not None else None
        global_step: Any = getattr(trainer, "global_step", None)
        if global_step is None:
            global_step = getattr(checkpoint_callback, "_last_global_step_saved", 0)
        epoch = getattr(trainer, "current_epoch", self._epoch)
        metadata = {
            "step": int(global_step) - 1,  # the last step whose statistics it covers
            "global_step": int(global_step),
            "epoch": epoch,
            "checkpoint": os.path.basename(path),
        }
        # Two saves of one step (top-k and last) hold one state: the later one is kept.
        self._waiting = [s for s in self._waiting if s.global_step != global_step]
        with open(path, "rb") as handle:
            body = kleio_logger._store_artifact(self._artifact, handle, metadata)
        if body is not None:
            self._waiting.append(_Stored(int(global_step), body))

    def finalize(self, status: str) -> None:
        if status == "success":
            self._journal_checkpoints(lambda stored: True)

    # -- resuming ------------------------------------------------------------------------

    def last_checkpoint(self) -> str | None:
        """The path of the trial's last journaled checkpoint, for ``trainer.fit(...,
        ckpt_path=logger.last_checkpoint())``; loading it makes it the execution's resume
        point.  None when there is none (a first run; outside kleio)."""
        found = kleio_logger.load_artifact(self._artifact)
        return None if found is None else found.path

    def _journal_checkpoints(self, due: Any) -> None:
        if not self._waiting:
            return
        journal = [s for s in self._waiting if due(s)]
        self._waiting = [s for s in self._waiting if not due(s)]
        for stored in journal:
            kleio_logger._journal_artifact(stored.body)


class _CheckpointsJournal(_Callback):
    """Journals a logger's waiting checkpoints at the start of the next batch, and at the
    end of training: by then the Trainer has logged everything they cover."""

    def __init__(self, logger: KleioLogger) -> None:
        self.logger = logger

    def on_train_batch_start(self, *args: Any, **kwargs: Any) -> None:
        self.logger._journal_checkpoints(lambda stored: True)

    def on_train_end(self, *args: Any, **kwargs: Any) -> None:
        self.logger._journal_checkpoints(lambda stored: True)


def _number(value: Any) -> Any:
    item = getattr(value, "item", None)  # a tensor Lightning did not convert
    return item() if callable(item) and not isinstance(value, (int, float)) else value


def _storable(value: Any, depth: int = 0) -> Any:
    """Hyperparameters as the journal stores them: numbers, strings, None, lists and
    dicts of them; anything else (a class, a device, a path) as its ``str``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth < 8 and isinstance(value, Mapping):
        return {str(k): _storable(v, depth + 1) for k, v in value.items()}
    if depth < 8 and isinstance(value, (list, tuple)):
        return [_storable(v, depth + 1) for v in value]
    if callable(getattr(value, "item", None)) and getattr(value, "ndim", None) == 0:
        return value.item()
    return str(value)
