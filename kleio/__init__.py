"""The import path of the first Kleio, kept for its users' scripts:
``from kleio.client.logger import kleio_logger``.

Nothing lives here: ``kleio.client.logger`` re-exports ``kleio_client.logger``, so both
paths name the same ``kleio_logger``.  New code imports ``kleio_client``.
"""
