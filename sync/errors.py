"""The errors pmsync reports as one line, each with the exit code the CLI uses (DESIGN §10)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75


class PmsyncError(Exception):
    """An expected failure: its message is one line saying what, where, and what to do."""

    exit_code = EXIT_FAILED


class ConfigError(PmsyncError):
    exit_code = EXIT_USAGE


class SourceError(PmsyncError):
    """A source could not be read (credentials, network, API change)."""


class PublishError(PmsyncError):
    """A report could not be pushed to its target."""


class StoreError(PmsyncError):
    """The SQLite store cannot be opened or written."""


class LockedError(PmsyncError):
    exit_code = EXIT_LOCKED
