"""``kleio.client``: the first Kleio's name for ``kleio_client`` (see ``kleio``)."""

from kleio_client import kleio_logger

__all__ = ["kleio_logger"]
