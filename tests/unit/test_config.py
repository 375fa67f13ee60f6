"""Per-queue settings: validation of what is written, defaults from the Lua prelude."""

from __future__ import annotations

import math
import re
from dataclasses import fields
from pathlib import Path
from typing import get_type_hints

import pytest
from click.testing import CliRunner

from blueque import Client, ConfigError, CorruptKeyError, QueueConfig
from blueque.cli import cli
from blueque.config import SCHEMA, parse_config, validate_settings


def test_valid_settings_become_strings() -> None:
    assert validate_settings({"max_attempts": 5, "retry_delay_s": 0.5, "keep_finished": 1}) == {
        "max_attempts": "5",
        "retry_delay_s": "0.5",
        "keep_finished": "1",
    }
    assert validate_settings({"max_attempts": 2.0}) == {"max_attempts": "2"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_atempts": 3}, "unknown queue setting 'max_atempts'"),
        ({"max_attempts": 0}, "max_attempts must be >= 1"),
        ({"max_attempts": 1.5}, "max_attempts must be a whole number"),
        ({"finished_ttl_s": "week"}, "finished_ttl_s must be a number"),
        ({"retry_backoff": 0.5}, "retry_backoff must be >= 1"),
        ({"keep_finished": 0}, "keep_finished must be >= 1"),
        ({"retry_max": None}, "retry_max must be a number"),
        ({"retry_delay_s": math.nan}, "retry_delay_s must be a finite number"),
        ({"retry_delay_s": "nan"}, "retry_delay_s must be a finite number"),
        ({"retry_delay_s": math.inf}, "retry_delay_s must be a finite number"),
        ({"retry_backoff": "-inf"}, "retry_backoff must be a finite number"),
        ({"retry_delay_s": 1e300}, "retry_delay_s must be <= 315360000"),
        ({"finished_ttl_s": "1e30"}, "finished_ttl_s must be <= 315360000"),
        ({"max_attempts": 10**30}, "max_attempts must be <= 1000"),
        ({"retry_backoff": 1e6}, "retry_backoff must be <= 100"),
        ({"max_attempts": "9" * 5000}, r"max_attempts must be a finite number, got '9{38}…$"),
        ({"max_attempts": True}, "max_attempts must be a number"),
        ({"keep_finished": [5]}, "keep_finished must be a number"),
    ],
)
def test_invalid_settings(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_settings(settings)


def test_parse_config() -> None:
    raw = {
        "max_attempts": "3",
        "keep_finished": "10",
        "finished_ttl_s": "60",
        "retry_max": "0",
        "retry_delay_s": "1.5",
        "retry_backoff": "2",
    }
    config = parse_config(raw)
    assert (config.max_attempts, config.retry_delay_s) == (3, 1.5)
    assert config.as_dict()["finished_ttl_s"] == 60


def test_defaults_and_writes_through_the_scripts(fake_client: Client) -> None:
    queue = fake_client.get_queue("cfg.q")
    defaults = queue.config()
    assert (defaults.max_attempts, defaults.keep_finished, defaults.retry_max) == (3, 10000, 0)
    assert defaults.finished_ttl_s == 7 * 24 * 3600
    updated = queue.set_config(max_attempts=7, retry_delay_s=2.5)
    assert (updated.max_attempts, updated.retry_delay_s) == (7, 2.5)
    assert updated.keep_finished == defaults.keep_finished
    with pytest.raises(ConfigError):
        queue.set_config(max_attempts=7, bogus=1)
    assert queue.config() == updated  # nothing written by the refused call
    assert fake_client.queues() == ["cfg.q"]


# -- one schema: the Lua defaults, PROTOCOL.md, QueueConfig and the CLI agree with it ---------

REPO = Path(__file__).resolve().parents[2]


def lua_defaults() -> dict[str, float]:
    """The DEFAULTS table of the Lua prelude: `name = number,` lines between its braces."""
    lua = (REPO / "blueque" / "lua" / "_lib.lua").read_text()
    body = re.search(r"local DEFAULTS = \{(.*?)\n\}", lua, re.DOTALL)
    assert body is not None, "no DEFAULTS table in _lib.lua"
    entries = re.findall(r"^\s*(\w+)\s*=\s*([-0-9.]+)\s*,", body.group(1), re.MULTILINE)
    return {name: float(value) for name, value in entries}


def protocol_rows() -> list[list[str]]:
    """The rows of the table in PROTOCOL.md's Config section, cells stripped of backticks."""
    text = (REPO / "PROTOCOL.md").read_text()
    section = text.split("\n## Config", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[c.strip().strip("`") for c in row.strip("|").split("|")] for row in rows]
    assert cells[0] == ["field", "type", "minimum", "default", "meaning"], cells[0]
    return cells[2:]  # after the header and the --- line


def test_lua_defaults_are_the_schemas() -> None:
    assert lua_defaults() == {s.name: float(s.default) for s in SCHEMA}


def test_protocol_md_table_is_the_schema() -> None:
    assert protocol_rows() == [
        [s.name, s.json_type, f"{s.minimum:g}", f"{s.default:g}", s.description] for s in SCHEMA
    ]


def test_queue_config_has_the_schemas_fields_and_types() -> None:
    hints = get_type_hints(QueueConfig)
    assert [(f.name, hints[f.name]) for f in fields(QueueConfig)] == [
        (s.name, s.type) for s in SCHEMA
    ]


def test_minimums_are_enforced_and_defaults_are_valid() -> None:
    for s in SCHEMA:
        assert validate_settings({s.name: s.default}) == {s.name: str(s.type(s.default))}
        below = s.minimum - 1 if s.type is int else s.minimum - 0.5
        with pytest.raises(ConfigError, match=f"{s.name} must be >= "):
            validate_settings({s.name: below})


def test_cli_help_lists_the_schema() -> None:
    help_text = CliRunner().invoke(cli, ["config", "--help"]).output
    for s in SCHEMA:
        assert f"{s.name}: {s.json_type} >= {s.minimum:g}, default {s.default:g}" in help_text
        assert " ".join(help_text.split()).count(s.description) == 1


@pytest.mark.parametrize("stored", ["nan", "inf", "abc", "1e300"])
def test_a_corrupt_stored_setting_names_the_key(fake_client: Client, stored: str) -> None:
    # Written by hand or by another client: reading it names the key, never returns NaN.
    queue = fake_client.get_queue("cfg.q")
    fake_client.redis.hset(queue.keys.config, "retry_delay_s", stored)
    with pytest.raises(CorruptKeyError, match=r"blueque:\{cfg.q\}:config .*retry_delay_s") as err:
        queue.config()
    assert err.value.key == queue.keys.config
    repaired = queue.set_config(retry_delay_s=5)  # the way out the message names
    assert repaired.retry_delay_s == 5
