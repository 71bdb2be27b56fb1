"""How the `tcpip` command words a failure: one line `tcpip <command>: error: <what>` (exit status 2), an
OSError by its strerror text (never "[Errno N]"), and a permission failure naming CAP_NET_ADMIN."""

from __future__ import annotations

import errno
import re

PROG = "tcpip"
_ERRNO = re.compile(r"\[Errno -?\d+\] ")
_CAP_HINT = "run as root or with CAP_NET_ADMIN"


class UsageError(Exception):
    """A bad flag or environment problem: reported on one line, exit status 2."""


def prefix(command: str | None) -> str:
    """`tcpip <command>`, the start of every line the command writes to stderr."""
    return f"{PROG} {command}" if command else PROG


def error_line(command: str | None, what: str) -> str:
    return f"{prefix(command)}: error: {what}"


def with_cap_hint(text: str) -> str:
    """`text`, naming CAP_NET_ADMIN if it does not yet."""
    return text if "CAP_NET_ADMIN" in text else f"{text} ({_CAP_HINT})"


def describe(e: BaseException) -> str:
    """One line for `e`: an OSError by its strerror (with its file name, if any), any stray "[Errno N] "
    removed; EPERM/EACCES on anything but a file names CAP_NET_ADMIN (opening the TAP, entering a
    namespace, setting the link up all need it)."""
    if isinstance(e, OSError) and e.strerror:
        text = f"{e.filename}: {e.strerror}" if e.filename is not None else e.strerror
    else:
        text = str(e) or type(e).__name__
    text = _ERRNO.sub("", text)
    if isinstance(e, OSError) and e.errno in (errno.EPERM, errno.EACCES) and e.filename is None:
        text = with_cap_hint(text)
    return text
