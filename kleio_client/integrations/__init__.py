"""Kleio for training code that uses a framework, one module per framework:

* ``kleio_client.integrations.lightning``: ``KleioLogger``, a PyTorch Lightning logger
  (``pip install 'kleio[lightning]'``);
* ``kleio_client.integrations.tensorboard``: what makes ``SummaryWriter`` scalars
  statistics under ``kleio``, with no change to the script (installed by the trial's
  start-up hook, ``kleio_client.startup``).

This package imports nothing: each module imports its framework, and only when it is
imported itself; ``kleio_client`` never does.
"""
