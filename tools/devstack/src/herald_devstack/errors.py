"""Exception tree of herald_devstack.

DevstackError                 anything this package reports on purpose
├── BinaryNotFoundError       a server binary or console script is not installed
├── PermissionProblemError    a directory cannot be used by the user a server must run as
├── ServerStartError          a server did not start or did not become ready (carries its log tail)
└── ProcessExitedError        a managed process exited while we were waiting on it
"""

from __future__ import annotations


class DevstackError(Exception):
    """Base of every error this package raises on purpose."""


class BinaryNotFoundError(DevstackError):
    pass


class PermissionProblemError(DevstackError):
    pass


class ServerStartError(DevstackError):
    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        text = message if not log_tail else f"{message}\n--- last log lines ---\n{log_tail}"
        super().__init__(text)


class ProcessExitedError(DevstackError):
    def __init__(self, name: str, returncode: int | None, log_tail: str = "") -> None:
        self.name = name
        self.returncode = returncode
        self.log_tail = log_tail
        message = f"process {name!r} exited with code {returncode}"
        if log_tail:
            message = f"{message}\n--- last output lines ---\n{log_tail}"
        super().__init__(message)
