"""The ``kleio`` command line."""
