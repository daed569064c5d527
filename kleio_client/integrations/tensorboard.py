"""TensorBoard scalars as statistics: ``SummaryWriter.add_scalar`` and ``add_scalars``
also journal what they write.

Under ``kleio`` the trial's start-up hook (``kleio_client.startup``) calls
:func:`capture` on ``torch.utils.tensorboard.SummaryWriter`` and
``tensorboardX.SummaryWriter`` when their modules are imported; a script may call it on
another writer class with the same methods.  Each call still writes its event file
first, then stores one record:

* ``add_scalar(tag, value, global_step)`` → ``{tag: value, "step": global_step}``;
* ``add_scalars(main, {sub: value, ...}, global_step)`` → ``{"main/sub": value, ...,
  "step": global_step}``;
* values that are tensors or numpy scalars become Python numbers (``.item()``), a
  ``global_step`` of None leaves ``step`` out of the record (TensorBoard shows it at
  step 0), and a call made inside another captured call (a writer whose
  ``add_scalars`` calls ``add_scalar``) is journaled once, by the outer one.

A value that cannot be journaled costs the record, never the training: the writer's
call returns as before, and the process says so once on stderr.  Imports neither torch
nor tensorboard.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["capture"]

_CAPTURED = "_kleio_captured"
_inside = threading.local()  # a captured call in progress on this thread
_warned: list[bool] = []


def capture(writer_class: type) -> None:
    """Make ``writer_class``'s ``add_scalar`` and ``add_scalars`` journal their scalars
    (once per class, whatever the number of calls)."""
    if writer_class.__dict__.get(_CAPTURED):
        return
    for name, record in (("add_scalar", _scalar_record), ("add_scalars", _scalars_record)):
        method = getattr(writer_class, name, None)
        if method is not None:
            setattr(writer_class, name, _journaling(method, record))
    setattr(writer_class, _CAPTURED, True)


def _journaling(method: Callable[..., Any], record: Callable[..., dict[str, Any]]) -> Any:
    from kleio_client import kleio_logger

    @functools.wraps(method)
    def journaling(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_inside, "call", False):
            return method(self, *args, **kwargs)
        _inside.call = True
        try:
            result = method(self, *args, **kwargs)
        finally:
            _inside.call = False
        try:
            kleio_logger.log_statistic(**record(*args, **kwargs))
        except Exception as exc:  # telemetry never breaks training
            _warn_once(method.__name__, exc)
        return result

    return journaling


def _scalar_record(
    tag: str, scalar_value: Any, global_step: Any = None, *_: Any, **__: Any
) -> dict[str, Any]:
    return _with_step({str(tag): _number(scalar_value)}, global_step)


def _scalars_record(
    main_tag: str, tag_scalar_dict: dict[str, Any], global_step: Any = None, *_: Any, **__: Any
) -> dict[str, Any]:
    values = {f"{main_tag}/{sub}": _number(v) for sub, v in tag_scalar_dict.items()}
    return _with_step(values, global_step)


def _with_step(record: dict[str, Any], global_step: Any) -> dict[str, Any]:
    if global_step is not None:
        record["step"] = int(_number(global_step))
    return record


def _number(value: Any) -> Any:
    """A Python int or float: a tensor's or numpy scalar's ``.item()``, else ``float``."""
    if type(value) is float or type(value) is int:
        return value
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return float(value)


def _warn_once(method: str, exc: Exception) -> None:
    if _warned:
        return
    _warned.append(True)
    print(
        f"kleio: a TensorBoard scalar was not journaled ({method}: {exc}); the event file "
        "has it, and later ones are journaled when they can be",
        file=sys.stderr,
    )
