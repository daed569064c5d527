"""Keras: ``model.fit(..., callbacks=[KleioCallback()])`` journals each batch and each
epoch, and the weights at each epoch's end when asked.

::

    from kleio_client.integrations.keras import KleioCallback

    callback = KleioCallback(log_weights=True)
    initial_epoch = callback.resume(model)  # 0 on a first run
    model.fit(x, y, epochs=10, initial_epoch=initial_epoch, callbacks=[callback])

* each batch → ``{"epoch": E, "batch": B, "step": S, **logs}`` (``S`` counts the
  batches of the whole training; ``log_batches=False`` leaves these out);
* each epoch → ``{"epoch": E, **logs}`` (validation values included, as Keras names
  them: ``val_loss``...);
* ``log_weights=True`` → the weights (``model.save_weights``, optimizer variables
  included) as the artifact ``keras.weights.h5`` (``artifact=`` names it otherwise)
  with metadata ``epoch`` and ``step``, after that epoch's records;
* :meth:`KleioCallback.resume` loads the last journaled weights into the model (they
  become the execution's resume point) and returns the epoch to start from, for
  ``fit(initial_epoch=...)``; 0 when there are none (a first run; outside kleio).

Values are Python numbers (Keras hands numpy or backend scalars).  Works with Keras 3
on any backend, and with ``tf.keras``.  Without Keras, importing this module raises
ImportError naming the extra to install.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from kleio_client import kleio_logger
from kleio_client.integrations import framework

__all__ = ["KleioCallback"]

keras: Any = framework("keras", "KleioCallback", "Keras")


class KleioCallback(keras.callbacks.Callback):
    """A Keras callback that journals into the trial the script runs as (see the module's
    docstring); outside kleio it prints the statistics, as ``kleio_logger``."""

    def __init__(
        self,
        log_batches: bool = True,
        log_weights: bool = False,
        artifact: str = "keras.weights.h5",
    ) -> None:
        super().__init__()
        self._log_batches = log_batches
        self._log_weights = log_weights
        self._artifact = artifact
        self._epoch = 0
        self._step = 0  # batches trained so far, over every epoch

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = int(epoch)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._step += 1
        if self._log_batches:
            kleio_logger.log_statistic(
                epoch=self._epoch, batch=int(batch), step=self._step, **_numbers(logs)
            )

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        kleio_logger.log_statistic(epoch=int(epoch), **_numbers(logs))
        if self._log_weights and kleio_logger.trial_id is not None:
            with tempfile.TemporaryDirectory() as directory:
                path = os.path.join(directory, "model.weights.h5")
                self.model.save_weights(path)
                with open(path, "rb") as saved:
                    kleio_logger.log_artifact(
                        self._artifact, saved, epoch=int(epoch), step=self._step
                    )

    def resume(self, model: Any) -> int:
        """Load the last journaled weights into ``model``; the epoch to start from
        (``fit(initial_epoch=...)``), 0 when there are none."""
        found = kleio_logger.load_artifact(self._artifact)
        if found is None:
            return 0
        with tempfile.TemporaryDirectory() as directory:
            # Keras reads weights from a file whose name says what it holds.
            path = os.path.join(directory, "model.weights.h5")
            shutil.copyfile(found.path, path)
            _build_optimizer(model)
            model.load_weights(path)
        self._step = int(found.metadata.get("step", 0))
        return int(found.metadata["epoch"]) + 1


def _build_optimizer(model: Any) -> None:
    """Make the optimizer's variables, which the saved weights include, before loading."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not getattr(optimizer, "built", True):
        optimizer.build(model.trainable_variables)


def _numbers(logs: Any) -> dict[str, Any]:
    """Keras's logs as Python numbers (``float`` of numpy and backend scalars)."""
    found: dict[str, Any] = {}
    for key, value in (logs or {}).items():
        try:
            found[str(key)] = float(value)
        except (TypeError, ValueError):
            found[str(key)] = str(value)
    return found
