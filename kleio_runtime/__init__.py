"""What the CLI, the daemon and the supervisor share beyond the wire: the one resolved
configuration, the runtime directory where the daemon's sockets and lock are, the lock
itself, and how to start a daemon when none runs.

Standard library, platformdirs and ``kleio_client.protocol`` only: it never imports
``kleiod``, ``kleio_cli`` or ``kleio_supervisor``.
"""
