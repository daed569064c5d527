"""The supervisor: one small process per trial execution, the trial's parent.

Neither the daemon nor the CLI: the CLI runs it in the caller's session for a
foreground trial, the daemon spawns it (``python -m kleio_supervisor SPEC_JSON``)
for a detached one.  It speaks to the daemon through ``kleio_client`` only.
"""
