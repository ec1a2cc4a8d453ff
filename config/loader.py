"""Load `pmsync.toml`: TOML, `${VAR}` interpolation, per-kind validation, one-line errors."""

from __future__ import annotations

import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from config.schema import Config
from connectors import connector_class
from connectors.base import SourceSettings
from sync.delivery import COMMON_OPTIONS, DELIVERY_MODELS, DeliveryTarget
from sync.errors import ConfigError

log = logging.getLogger("pmsync.config")

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_KEY = re.compile(r"(?i)(token|secret|password|passwd|api_?key|private_?key)$")
EXAMPLE = Path(__file__).with_name("pmsync.example.toml")
# Publish targets that are not sources: delivered by pmsync itself (see sync/publish.py).
DELIVERY_KINDS: dict[str, type[BaseModel]] = dict(DELIVERY_MODELS)


def default_config_path() -> Path:
    return Path(os.environ.get("PMSYNC_CONFIG", "pmsync.toml"))


def load_config(path: Path | str) -> Config:
    """Read, interpolate and validate the config file; raise ConfigError with one line per problem."""
    path = Path(path)
    label = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file; create one with `pmsync init` or pass --config"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from None
    return parse_config(raw, label=label, base_dir=path.resolve().parent)


def parse_config(raw: dict[str, Any], *, label: str, base_dir: Path) -> Config:
    """Validate an already-parsed TOML document (see load_config)."""
    errors: list[str] = []
    secrets: list[str] = []
    raw = dict(raw)
    sources_raw = raw.pop("sources", {}) or {}
    if not isinstance(sources_raw, dict):
        raise ConfigError(f"{label}: sources: must be a table of [sources.NAME] sections")
    sources: dict[str, SourceSettings] = {}
    for name, section in sources_raw.items():
        where = f"sources.{name}"
        if not isinstance(section, dict):
            errors.append(f"{label}: {where}: must be a table")
            continue
        kind = section.get("kind")
        if not kind:
            errors.append(f"{label}: {where}.kind: field required")
            continue
        try:
            cls = connector_class(str(kind))
        except ConfigError as exc:
            errors.append(f"{label}: {where}.kind: {exc}")
            continue
        try:
            values = _interpolate(section, where, name, secrets)
        except ConfigError as exc:
            errors.append(f"{label}: {exc}")
            continue
        secrets += _warn_literal_secrets(cls.Settings, section, f"{label}: {where}")
        try:
            settings = cls.Settings.model_validate(values)
        except ValidationError as exc:
            errors.extend(_lines(exc, label, where))
            continue
        sources[name] = _resolve_paths(settings, base_dir)
    _warn_literal_target_secrets(raw.get("projects"), label)
    try:
        rest = _interpolate(raw, "", None, secrets)
    except ConfigError as exc:
        errors.append(f"{label}: {exc}")
        rest = {}
    if errors:
        raise ConfigError("\n".join(errors))
    try:
        config = Config.model_validate(
            {**rest, "sources": sources, "base_dir": base_dir, "secrets": secrets}
        )
    except ValidationError as exc:
        raise ConfigError("\n".join(_lines(exc, label, ""))) from None
    config.store.path = config.resolve(config.store.path)
    for pid, project in config.projects.items():
        if project.lessons_learned is not None:
            project.lessons_learned = config.resolve(project.lessons_learned)
        for n, target in enumerate(project.publish):
            errors.extend(_check_target(config, label, f"projects.{pid}.publish[{n}]", target))
    if errors:
        raise ConfigError("\n".join(errors))
    return config


def _check_target(config: Config, label: str, where: str, target: Any) -> list[str]:
    options = target.options
    if target.to in config.sources:
        cls = connector_class(config.sources[target.to].kind)
        if cls.Target is None:
            why = getattr(cls, "publish_unsupported_reason", "it has no way to post a report")
            return [f"{label}: {where}: {cls.kind} sources cannot publish reports: {why}"]
        # audience/language are pmsync's own options: checked here, never passed to connectors.
        try:
            DeliveryTarget.model_validate({k: options[k] for k in COMMON_OPTIONS if k in options})
        except ValidationError as exc:
            return _lines(exc, label, where)
        options = {k: v for k, v in options.items() if k not in COMMON_OPTIONS}
        model: type[BaseModel] = cls.Target
    elif target.to in DELIVERY_KINDS:
        model = DELIVERY_KINDS[target.to]
    else:
        known = [*config.sources, *DELIVERY_KINDS]
        return [f"{label}: {where}.to: unknown target {target.to!r} (known: {', '.join(known)})"]
    try:
        model.model_validate(options)
    except ValidationError as exc:
        return _lines(exc, label, where)
    return []


def _warn_literal_target_secrets(projects: Any, label: str) -> None:
    """Warn about a secret (an SMTP password…) written literally in a publish target."""
    if not isinstance(projects, dict):
        return
    for pid, project in projects.items():
        targets = project.get("publish") if isinstance(project, dict) else None
        for n, target in enumerate(targets if isinstance(targets, list) else []):
            if not isinstance(target, dict):
                continue
            for key, value in target.items():
                literal = isinstance(value, str) and value and not ENV_REF.search(value)
                if SECRET_KEY.search(key) and literal:
                    log.warning(
                        "%s: projects.%s.publish[%d].%s: a secret is written in the file;"
                        ' use %s = "${ENV_VAR}" and keep it in the environment',
                        label,
                        pid,
                        n,
                        key,
                        key,
                    )


def _interpolate(value: Any, where: str, source: str | None, secrets: list[str]) -> Any:
    """Replace ${VAR} in every string with the environment's value."""
    if isinstance(value, dict):
        return {
            k: _interpolate(v, f"{where}.{k}" if where else k, source, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, f"{where}[{n}]", source, secrets) for n, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(match: re.Match[str]) -> str:
        var = match.group(1)
        if var not in os.environ:
            owner = f"source {source!r} needs" if source else "needs"
            raise ConfigError(
                f"{where}: {owner} environment variable {var}, which is not set"
                f" (export {var}=… before running pmsync)"
            )
        value = os.environ[var]
        if SECRET_KEY.search(where.rsplit(".", 1)[-1]):
            secrets.append(value)
        return value

    return ENV_REF.sub(sub, value)


def _warn_literal_secrets(model: type[BaseModel], section: dict[str, Any], where: str) -> list[str]:
    """Warn about secrets written in the file; return them so they are redacted all the same."""
    found = []
    for name, info in model.model_fields.items():
        value = section.get(name)
        is_secret = info.annotation is SecretStr or "SecretStr" in str(info.annotation)
        if is_secret and isinstance(value, str) and value and not ENV_REF.search(value):
            log.warning(
                '%s.%s: a secret is written in the file; use %s = "${ENV_VAR}" and keep it'
                " in the environment",
                where,
                name,
                name,
            )
            found.append(value)
    return found


def _resolve_paths(settings: SourceSettings, base_dir: Path) -> SourceSettings:
    # `base_dir / p` is p itself when p is absolute, so this also expands `~`.
    updates = {
        name: base_dir / value.expanduser() for name, value in settings if isinstance(value, Path)
    }
    return settings.model_copy(update=updates) if updates else settings


def _lines(exc: ValidationError, label: str, where: str) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in ("function-after",))
        dotted = ".".join(p for p in (where, loc) if p)
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "field required"
        elif err["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling)"
        msg = msg.removeprefix("Value error, ")
        # A model-level check (unknown source in a project) names its own dotted path.
        out.append(f"{label}: {dotted}: {msg}" if dotted else f"{label}: {msg}")
    return out
