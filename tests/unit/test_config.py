"""Per-queue settings: validation of what is written, defaults from the Lua prelude."""

from __future__ import annotations

import math

import pytest

from blueque import Client, ConfigError, CorruptKeyError
from blueque.config import parse_config, validate_settings


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
