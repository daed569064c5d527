"""Hugging Face Transformers: ``Trainer(..., callbacks=[KleioCallback()])`` journals what
the Trainer logs, and its checkpoints when asked.

::

    from kleio_client.integrations.transformers import KleioCallback

    callback = KleioCallback(log_checkpoints=True)
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
    trainer.train(resume_from_checkpoint=callback.last_checkpoint(args.output_dir))

* ``on_log`` → one statistic per call: the values the Trainer logged (``loss``,
  ``learning_rate``, ``grad_norm``, ``eval_*``...), its ``epoch`` (a float, as the
  Trainer counts) and ``step`` (``state.global_step``).  Only the main process
  (``state.is_world_process_zero``) journals.
* ``log_checkpoints=True`` → each checkpoint directory the Trainer saves
  (``checkpoint-N``) is stored, as one uncompressed tar, as the artifact
  ``transformers-checkpoint.tar`` (``artifact=`` names it otherwise) with metadata
  ``step`` (N), ``epoch`` and ``checkpoint`` (the directory's name).  The Trainer
  saves after it has logged the step, so the artifact comes after the statistics it
  covers.
* :meth:`KleioCallback.last_checkpoint` loads the last journaled checkpoint (it becomes
  the execution's resume point), unpacks it as ``OUTPUT_DIR/checkpoint-N`` and returns
  that path, for ``trainer.train(resume_from_checkpoint=...)``; None on a trial's first
  run and outside kleio.  Re-running the same command then continues from there, each
  step once in the effective history.

Without ``transformers``, importing this module raises ImportError naming the extra
to install.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from typing import Any

from kleio_client import kleio_logger
from kleio_client.integrations import framework

__all__ = ["KleioCallback"]

TrainerCallback: Any = framework(
    "transformers", "KleioCallback", "Hugging Face Transformers"
).TrainerCallback


class KleioCallback(TrainerCallback):
    """A Trainer callback that journals into the trial the script runs as (see the
    module's docstring); outside kleio it prints the statistics, as ``kleio_logger``."""

    def __init__(
        self, log_checkpoints: bool = False, artifact: str = "transformers-checkpoint.tar"
    ) -> None:
        self._log_checkpoints = log_checkpoints
        self._artifact = artifact

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        record = {str(k): _number(v) for k, v in logs.items()}
        record["step"] = int(state.global_step)
        if state.epoch is not None:
            record.setdefault("epoch", float(state.epoch))
        kleio_logger.log_statistic(**record)

    def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if not self._log_checkpoints or not state.is_world_process_zero:
            return
        name = f"checkpoint-{state.global_step}"
        directory = os.path.join(args.output_dir, name)
        if not os.path.isdir(directory):
            return
        with tempfile.TemporaryFile() as packed:
            with tarfile.open(fileobj=packed, mode="w") as tar:
                tar.add(directory, arcname=".")
            packed.seek(0)
            kleio_logger.log_artifact(
                self._artifact,
                packed,
                step=int(state.global_step),
                epoch=None if state.epoch is None else float(state.epoch),
                checkpoint=name,
            )

    def last_checkpoint(self, output_dir: str) -> str | None:
        """The trial's last journaled checkpoint, unpacked under ``output_dir`` as the
        Trainer names it, for ``trainer.train(resume_from_checkpoint=...)``; None when
        there is none (a first run; outside kleio)."""
        found = kleio_logger.load_artifact(self._artifact)
        if found is None:
            return None
        name = str(found.metadata.get("checkpoint") or f"checkpoint-{found.metadata['step']}")
        target = os.path.join(output_dir, os.path.basename(name))
        os.makedirs(target, exist_ok=True)
        with tarfile.open(found.path, mode="r") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, filter="data")
            else:  # Pythons before the extraction filters: the archive is our own
                tar.extractall(target)  # noqa: S202
        return target


def _number(value: Any) -> Any:
    item = getattr(value, "item", None)  # a tensor or numpy scalar
    return item() if callable(item) and not isinstance(value, (int, float)) else value
