"""config/loader.py and config/schema.py: valid files, one-line errors, secrets, paths."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr

import connectors
from config.loader import EXAMPLE, load_config
from config.schema import Config, ProjectSettings
from connectors import connector_class, known_kinds
from connectors.base import Connector, SourceSettings
from connectors.csv import CsvSettings
from sync.errors import EXIT_USAGE, ConfigError

BUILTIN_KINDS = ["csv", "github", "jira", "pingcode", "redmine", "worktile"]


# -- a connector with secret fields, registered for these tests only ---------------------------


class TokenSettings(SourceSettings):
    kind: Literal["tokentest"] = "tokentest"
    url: str
    token: SecretStr
    password: SecretStr | None = None


class TokenTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issue: str


class TokenConnector(Connector):
    kind = "tokentest"
    Settings = TokenSettings
    Target = TokenTarget

    def fetch_items(self, since: Any) -> Iterator[Any]:
        return iter(())


class _EntryPoint:
    def __init__(self, cls: type[Connector]) -> None:
        self.cls = cls

    def load(self) -> type[Connector]:
        return self.cls


@pytest.fixture
def token_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register `kind = "tokentest"` next to the built-in connectors."""
    real = connectors._entry_points
    connector_class.cache_clear()
    monkeypatch.setattr(
        connectors, "_entry_points", lambda: {**real(), "tokentest": _EntryPoint(TokenConnector)}
    )
    yield
    connector_class.cache_clear()


def write(tmp_path: Path, text: str, name: str = "pmsync.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_lines(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.exit_code == EXIT_USAGE
    return str(info.value).splitlines()


CSV_SOURCE = """\
[sources.exp]
kind = "csv"
path = "exports/acme.csv"
"""

PROJECT = """\
[projects.acme]
name = "ACME"
sources = ["exp"]
"""


# -- valid files ------------------------------------------------------------------------------


def test_load_valid_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token_kind: None
) -> None:
    monkeypatch.setenv("PMSYNC_TEST_TOKEN", "tk-live-0123456789")
    monkeypatch.setenv("PMSYNC_TEST_HOST", "jira.example")
    path = write(
        tmp_path,
        """\
[store]
path = "data/pm.db"

[sync]
overlap_minutes = 10
census_every_hours = 6

[sources.exp]
kind = "csv"
path = "exports/acme.csv"
preset = "jira"
status_map = { "Parked" = "cancelled" }
blocked_statuses = ["Waiting"]

[sources.tracker]
kind = "tokentest"
url = "https://${PMSYNC_TEST_HOST}/api"
token = "${PMSYNC_TEST_TOKEN}"

[projects.acme]
name = "ACME Website Relaunch"
client = "ACME Corp"
sources = ["exp", "tracker"]
start_date = 2026-09-01
target_date = 2027-03-31
schedule = "0 9 * * MON"
timezone = "Europe/Berlin"
language = "zh-CN"
internal_labels = ["internal", "ops"]
lessons_learned = "notes/lessons.md"

[[projects.acme.publish]]
to = "tracker"
issue = "ACME-1"
""",
    )

    config = load_config(path)

    assert isinstance(config, Config)
    assert config.base_dir == tmp_path.resolve()
    assert config.store.path == tmp_path.resolve() / "data/pm.db"
    assert config.sync.overlap_minutes == 10
    assert config.sync.census_every_hours == 6
    exp = config.sources["exp"]
    assert isinstance(exp, CsvSettings)
    assert exp.kind == "csv"
    assert exp.preset == "jira"
    assert exp.path == tmp_path.resolve() / "exports/acme.csv"
    assert exp.status_map == {"Parked": "cancelled"}
    assert exp.blocked_statuses == ["Waiting"]
    tracker = config.sources["tracker"]
    assert isinstance(tracker, TokenSettings)
    assert tracker.url == "https://jira.example/api"
    assert tracker.token.get_secret_value() == "tk-live-0123456789"
    assert config.secrets == ["tk-live-0123456789"]
    assert "tk-live-0123456789" not in repr(config)
    project = config.projects["acme"]
    assert isinstance(project, ProjectSettings)
    assert project.name == "ACME Website Relaunch"
    assert project.client == "ACME Corp"
    assert project.sources == ["exp", "tracker"]
    assert project.start_date == date(2026, 9, 1)
    assert project.target_date == date(2027, 3, 31)
    assert project.schedule == "0 9 * * MON"
    assert project.zone.key == "Europe/Berlin"
    assert project.language == "zh-CN"
    assert project.internal_labels == ["internal", "ops"]
    assert project.change_request_labels == ["change-request"]
    assert project.lessons_learned == tmp_path.resolve() / "notes/lessons.md"
    assert [(t.to, t.options) for t in project.publish] == [("tracker", {"issue": "ACME-1"})]
    assert config.projects_using("exp") == ["acme"]
    assert config.projects_using("other") == []


def test_defaults_for_a_minimal_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CSV_SOURCE + PROJECT))
    assert config.store.path == tmp_path.resolve() / "pmsync.db"
    assert config.sync.overlap_minutes == 5
    assert config.sync.census_every_hours == 24
    project = config.projects["acme"]
    assert project.timezone == "UTC"
    assert project.language == "en"
    assert project.client == ""
    assert project.publish == []
    assert project.schedule is None
    assert config.secrets == []


def test_empty_file_is_a_valid_empty_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.sources == {}
    assert config.projects == {}


def test_utf8_bom_and_chinese_values(tmp_path: Path) -> None:
    path = tmp_path / "pmsync.toml"
    text = (
        CSV_SOURCE + '[projects.acme]\nname = "官网改版"\nclient = "某某公司"\nsources = ["exp"]\n'
    )
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    config = load_config(path)
    assert config.projects["acme"].name == "官网改版"
    assert config.projects["acme"].client == "某某公司"


def test_relative_paths_resolved_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    absolute = tmp_path / "abs" / "b.csv"
    path = write(
        conf_dir,
        f"""\
[store]
path = "../db/pmsync.db"

[sources.rel]
kind = "csv"
path = "exports/a.csv"

[sources.abs]
kind = "csv"
path = "{absolute.as_posix()}"

[projects.p]
name = "P"
sources = ["rel"]
lessons_learned = "lessons.md"
""",
    )

    config = load_config(Path("..") / "conf" / "pmsync.toml")

    base = conf_dir.resolve()
    assert config.base_dir == base
    assert config.sources["rel"].path == base / "exports/a.csv"
    assert config.sources["abs"].path == absolute
    assert config.store.path == base / "../db/pmsync.db"
    assert config.projects["p"].lessons_learned == base / "lessons.md"
    assert config.resolve("x/y.md") == base / "x/y.md"
    assert config.resolve(absolute) == absolute
    assert path.exists()


def test_home_relative_path_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write(tmp_path, '[sources.exp]\nkind = "csv"\npath = "~/exports/a.csv"\n')
    config = load_config(path)
    assert config.sources["exp"].path == tmp_path / "home" / "exports" / "a.csv"


def test_interpolation_everywhere_and_only_secret_fields_collected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token_kind: None
) -> None:
    monkeypatch.setenv("PMSYNC_TEST_DIR", "shared")
    monkeypatch.setenv("PMSYNC_TEST_CLIENT", "Globex")
    monkeypatch.setenv("PMSYNC_TEST_TOKEN", "tk-aaaa-1111")
    monkeypatch.setenv("PMSYNC_TEST_PASSWORD", "pw-bbbb-2222")
    path = write(
        tmp_path,
        """\
[sources.exp]
kind = "csv"
path = "${PMSYNC_TEST_DIR}/acme.csv"

[sources.t]
kind = "tokentest"
url = "https://x.example"
token = "${PMSYNC_TEST_TOKEN}"
password = "${PMSYNC_TEST_PASSWORD}"

[projects.acme]
name = "ACME for ${PMSYNC_TEST_CLIENT}"
client = "${PMSYNC_TEST_CLIENT}"
sources = ["exp", "t"]
""",
    )

    config = load_config(path)

    assert config.sources["exp"].path == tmp_path.resolve() / "shared/acme.csv"
    assert config.projects["acme"].name == "ACME for Globex"
    assert config.projects["acme"].client == "Globex"
    assert sorted(config.secrets) == ["pw-bbbb-2222", "tk-aaaa-1111"]


# -- broken files: one line each, starting with the file name and the dotted path --------------


BROKEN: list[tuple[str, str, list[str]]] = [
    (
        "malformed TOML",
        '[sources.exp\nkind = "csv"\n',
        ["broken.toml: not valid TOML: "],
    ),
    (
        "csv without path",
        '[sources.exp]\nkind = "csv"\npreset = "plain"\n',
        ["broken.toml: sources.exp.path: field required"],
    ),
    (
        "source without kind",
        '[sources.exp]\npath = "a.csv"\n',
        ["broken.toml: sources.exp.kind: field required"],
    ),
    (
        "unknown kind",
        '[sources.board]\nkind = "trello"\nboard = "x"\n',
        [
            "broken.toml: sources.board.kind: unknown source kind 'trello'; known kinds: "
            + ", ".join(BUILTIN_KINDS)
        ],
    ),
    (
        "missing environment variable",
        '[sources.exp]\nkind = "csv"\npath = "${PMSYNC_TEST_UNSET_DIR}/a.csv"\n',
        [
            "broken.toml: sources.exp.path: source 'exp' needs environment variable"
            " PMSYNC_TEST_UNSET_DIR, which is not set"
            " (export PMSYNC_TEST_UNSET_DIR=… before running pmsync)"
        ],
    ),
    (
        "project names an unknown source",
        CSV_SOURCE + '[projects.acme]\nname = "A"\nsources = ["exp", "acme-jira"]\n',
        ["broken.toml: projects.acme.sources: unknown source 'acme-jira' (defined: exp)"],
    ),
    (
        "unknown setting in a project",
        CSV_SOURCE + PROJECT + 'tmezone = "Europe/Berlin"\n',
        ["broken.toml: projects.acme.tmezone: unknown setting (check the spelling)"],
    ),
    (
        "unknown setting in a source",
        CSV_SOURCE + 'prest = "jira"\n',
        ["broken.toml: sources.exp.prest: unknown setting (check the spelling)"],
    ),
    (
        "unknown top-level table",
        '[stroe]\npath = "x.db"\n',
        ["broken.toml: stroe: unknown setting (check the spelling)"],
    ),
    (
        "bad timezone",
        CSV_SOURCE + PROJECT + 'timezone = "Mars/Olympus_Mons"\n',
        [
            "broken.toml: projects.acme.timezone: unknown timezone 'Mars/Olympus_Mons'"
            " (use an IANA name such as Europe/Berlin)"
        ],
    ),
    (
        "bad cron",
        CSV_SOURCE + PROJECT + 'schedule = "every monday at 9"\n',
        [
            "broken.toml: projects.acme.schedule: not a cron expression: 'every monday at 9'"
            " (e.g. '0 9 * * MON')"
        ],
    ),
    (
        "bad preset",
        CSV_SOURCE + 'preset = "trello"\n',
        ["broken.toml: sources.exp.preset: Input should be 'plain' or 'jira'"],
    ),
    (
        "bad date",
        CSV_SOURCE + PROJECT + 'start_date = "next week"\n',
        ["broken.toml: projects.acme.start_date: "],
    ),
    (
        "project without sources",
        CSV_SOURCE + '[projects.acme]\nname = "A"\n',
        ["broken.toml: projects.acme.sources: field required"],
    ),
    (
        "publish to a source that cannot publish",
        CSV_SOURCE + PROJECT + '[[projects.acme.publish]]\nto = "exp"\n',
        ["broken.toml: projects.acme.publish[0]: csv sources cannot publish reports"],
    ),
    (
        "publish to an unknown target",
        CSV_SOURCE + PROJECT + '[[projects.acme.publish]]\nto = "nowhere"\n',
        # The known targets are the sources, then pmsync's own delivery kinds.
        ["broken.toml: projects.acme.publish[0].to: unknown target 'nowhere' (known: exp"],
    ),
    (
        "two broken sources",
        '[sources.a]\nkind = "csv"\n[sources.b]\nkind = "nope"\n',
        [
            "broken.toml: sources.a.path: field required",
            "broken.toml: sources.b.kind: unknown source kind 'nope'; known kinds: ",
        ],
    ),
]


@pytest.mark.parametrize(("case", "text", "expected"), BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_config_gives_one_line_per_problem(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    text: str,
    expected: list[str],
) -> None:
    monkeypatch.delenv("PMSYNC_TEST_UNSET_DIR", raising=False)
    lines = error_lines(write(tmp_path, text, "broken.toml"))
    assert len(lines) == len(expected), lines
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith(want), (line, want)
        assert "Traceback" not in line
        assert "pydantic" not in line.lower()


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    (line,) = error_lines(write(tmp_path, 'store = 1\n[sources.a]\nkind = "csv\n', "broken.toml"))
    assert line.startswith("broken.toml: not valid TOML: ")
    assert "line 3" in line


def test_missing_env_var_for_a_secret_names_source_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token_kind: None
) -> None:
    monkeypatch.delenv("ACME_JIRA_TOKEN_UNSET", raising=False)
    path = write(
        tmp_path,
        '[sources.acme-jira]\nkind = "tokentest"\nurl = "https://x"\n'
        'token = "${ACME_JIRA_TOKEN_UNSET}"\n',
    )
    assert error_lines(path) == [
        "pmsync.toml: sources.acme-jira.token: source 'acme-jira' needs environment variable"
        " ACME_JIRA_TOKEN_UNSET, which is not set (export ACME_JIRA_TOKEN_UNSET=… before"
        " running pmsync)"
    ]


def test_missing_env_var_outside_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PMSYNC_TEST_UNSET_CLIENT", raising=False)
    path = write(
        tmp_path, CSV_SOURCE + PROJECT + 'client = "${PMSYNC_TEST_UNSET_CLIENT}"\n', "a.toml"
    )
    (line,) = error_lines(path)
    assert line.startswith(
        "a.toml: projects.acme.client: needs environment variable PMSYNC_TEST_UNSET_CLIENT,"
    )


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    (line,) = error_lines(tmp_path / "nope.toml")
    assert (
        line
        == f"{tmp_path / 'nope.toml'}: no such config file; create one with `pmsync init` or pass --config"
    )


def test_invalid_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes('[projects.a]\nname = "Caf\xe9"\n'.encode("latin-1"))
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: cannot read: ")


def test_error_lines_never_contain_secret_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token_kind: None
) -> None:
    monkeypatch.setenv("PMSYNC_TEST_TOKEN", "tk-never-shown-42")
    path = write(
        tmp_path,
        '[sources.t]\nkind = "tokentest"\ntoken = "${PMSYNC_TEST_TOKEN}"\nurl = 12\nextra = 1\n',
    )
    lines = error_lines(path)
    assert lines == [
        "pmsync.toml: sources.t.url: Input should be a valid string",
        "pmsync.toml: sources.t.extra: unknown setting (check the spelling)",
    ]
    assert all("tk-never-shown-42" not in line for line in lines)


# -- literal secrets --------------------------------------------------------------------------


def test_literal_secret_in_the_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, token_kind: None
) -> None:
    caplog.set_level(logging.WARNING, logger="pmsync.config")
    path = write(
        tmp_path,
        '[sources.t]\nkind = "tokentest"\nurl = "https://x"\ntoken = "literal-tk-9999"\n'
        'password = "literal-pw-8888"\n',
    )

    config = load_config(path)

    assert config.sources["t"].token.get_secret_value() == "literal-tk-9999"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        'pmsync.toml: sources.t.token: a secret is written in the file; use token = "${ENV_VAR}"'
        " and keep it in the environment",
        "pmsync.toml: sources.t.password: a secret is written in the file; use password ="
        ' "${ENV_VAR}" and keep it in the environment',
    ]
    assert "literal-tk-9999" not in caplog.text
    assert "literal-pw-8888" not in caplog.text


def test_secret_from_the_environment_is_not_warned_about(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    token_kind: None,
) -> None:
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("PMSYNC_TEST_TOKEN", "tk-env-5555")
    path = write(
        tmp_path,
        '[sources.t]\nkind = "tokentest"\nurl = "https://x"\ntoken = "${PMSYNC_TEST_TOKEN}"\n',
    )
    config = load_config(path)
    assert config.secrets == ["tk-env-5555"]
    assert [r for r in caplog.records if r.name == "pmsync.config"] == []


def test_csv_source_has_no_secret_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    load_config(write(tmp_path, CSV_SOURCE))
    assert [r for r in caplog.records if r.name == "pmsync.config"] == []


# -- the registry and the example -------------------------------------------------------------


def test_known_kinds_are_the_builtins() -> None:
    assert known_kinds() == BUILTIN_KINDS


def test_unknown_kind_error_from_registry() -> None:
    with pytest.raises(ConfigError) as info:
        connector_class("asana")
    assert str(info.value) == (
        "unknown source kind 'asana'; known kinds: " + ", ".join(BUILTIN_KINDS)
    )


def test_example_is_valid_toml_with_known_kinds() -> None:
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    kinds = {s["kind"] for s in raw["sources"].values()}
    assert kinds <= set(known_kinds())
    assert "csv" in kinds
    for project in raw["projects"].values():
        assert set(project["sources"]) <= set(raw["sources"])
        for target in project.get("publish", []):
            assert target["to"] in raw["sources"]


def test_example_loads_with_its_variables_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_API_TOKEN", "jira-tok-1234")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-tok-5678")
    config = load_config(EXAMPLE)
    assert set(config.sources) == {"acme-jira", "acme-board", "acme-export"}
    assert sorted(config.secrets) == ["ghp-tok-5678", "jira-tok-1234"]
    assert config.projects["acme"].schedule == "0 9 * * MON"
