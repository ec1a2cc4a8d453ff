"""Connector registry: built-ins and plugins alike register in the `pmsync.connectors` entry-point group."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from connectors.base import Connector
from sync.errors import ConfigError

GROUP = "pmsync.connectors"


@cache
def _entry_points() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def known_kinds() -> list[str]:
    """Return every registered connector kind, sorted."""
    return sorted(_entry_points())


@cache
def connector_class(kind: str) -> type[Connector]:
    """Return the connector class registered for `kind`, or raise a ConfigError naming the known kinds."""
    ep = _entry_points().get(kind)
    if ep is None:
        raise ConfigError(
            f"unknown source kind {kind!r}; known kinds: {', '.join(known_kinds()) or 'none'}"
        )
    try:
        cls = ep.load()  # type: ignore[attr-defined]
    except Exception as exc:  # a broken plugin must not crash pmsync with a traceback
        raise ConfigError(
            f"connector {kind!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}"  # type: ignore[attr-defined]
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(f"entry point {kind!r} in {GROUP} is not a pmsync Connector")
    return cls
