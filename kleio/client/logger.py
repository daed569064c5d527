"""``from kleio.client.logger import kleio_logger``: the first Kleio's import path, naming
the very object ``kleio_client.kleio_logger`` is."""

from kleio_client.logger import Logger, kleio_logger

__all__ = ["Logger", "kleio_logger"]
