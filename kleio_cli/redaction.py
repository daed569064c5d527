"""Secrets on the command line, kept out of the journal.

The value of an option whose name says it is a secret (``--password``,
``--db-pass``, ``--api-key``, ``--token``, ``--auth-token``, ``--secret``...) and
the password of any URL with credentials are stored and shown as ``***``;
the trial itself runs with the real command line.  A trial's identity is
computed from the redacted command, so a changed password resumes the same
trial.  A stored command holding ``***`` cannot be run again from the journal
(``kleio exec``, ``branch``, ``pdb``): the user runs the command again.
"""

from __future__ import annotations

import re

from kleio_cli.errors import EXIT_USAGE, CliError
from kleio_runtime.config import redact

REDACTED = "***"
SECRET_OPTION = re.compile(
    r"(^|[-_.])(pass(word|wd|phrase)?|secret|token|api[-_]?key|access[-_]?key|"
    r"private[-_]?key|credentials?|auth)([-_.]|$)",
    re.IGNORECASE,
)


def redacted(argv: list[str]) -> list[str]:
    shown: list[str] = []
    hide_next = False
    for token in argv:
        if hide_next and not token.startswith("-"):
            shown.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        name, equals, _ = token.partition("=")
        if token.startswith("-") and SECRET_OPTION.search(name.lstrip("-")):
            if equals:
                shown.append(f"{name}={REDACTED}")
            else:
                shown.append(token)
                hide_next = True
            continue
        shown.append(redact(token))
    return shown


def check_runnable(command: list[str], trial_id: str) -> None:
    """Refuse to run a stored command whose secrets were not stored."""
    if any(
        token == REDACTED or token.endswith("=" + REDACTED) or f":{REDACTED}@" in token
        for token in command
    ):
        raise CliError(
            f"kleio: trial {trial_id[:12]}'s command held a secret, which kleio does not "
            "store (it shows as ***); run the command again as you first ran it",
            EXIT_USAGE,
        )
