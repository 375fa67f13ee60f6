"""The operator's metrics, scraped over HTTP from `Metrics.serve` and parsed as Prometheus would."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from blueque_operator.metrics import Metrics, MetricsServer, QueueKey

VIDEOS = QueueKey("media", "videos", "videos")
THUMBS = QueueKey("media", "thumbs", "thumbnails")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def server(metrics: Metrics) -> Iterator[MetricsServer]:
    served = metrics.serve(0, "127.0.0.1")
    try:
        yield served
    finally:
        served.close()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: MetricsServer) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, key: QueueKey, **extra: str) -> float:
    labels = {"namespace": key.namespace, "bluequeue": key.bluequeue, "queue": key.queue}
    return samples[(name, frozenset((labels | extra).items()))]


def series_of(samples: Samples, key: QueueKey) -> set[str]:
    return {name for name, labels in samples if ("bluequeue", key.bluequeue) in labels}


def test_scraped_values(metrics: Metrics, server: MetricsServer) -> None:
    assert server.port > 0
    metrics.observe_tick(
        VIDEOS, 0.004, pending=7, running=3, scheduled=2, desired_replicas=4, replicas=3
    )
    metrics.observe_tick(VIDEOS, 0.2, pending=5)  # Redis read only in part: the rest stays
    metrics.scaled(VIDEOS, "up")
    metrics.scaled(VIDEOS, "up")
    metrics.reaped(VIDEOS, 2)
    metrics.redis_error(VIDEOS)
    metrics.set_leader(True)
    samples = scrape(server)

    assert value(samples, "blueque_pending_tasks", VIDEOS) == 5
    assert value(samples, "blueque_running_tasks", VIDEOS) == 3
    assert value(samples, "blueque_scheduled_tasks", VIDEOS) == 2
    assert value(samples, "blueque_desired_replicas", VIDEOS) == 4
    assert value(samples, "blueque_replicas", VIDEOS) == 3
    assert value(samples, "blueque_scale_events_total", VIDEOS, direction="up") == 2
    assert value(samples, "blueque_scale_events_total", VIDEOS, direction="down") == 0
    assert value(samples, "blueque_reaped_tasks_total", VIDEOS) == 2
    assert value(samples, "blueque_redis_errors_total", VIDEOS) == 1
    assert value(samples, "blueque_tick_duration_seconds_count", VIDEOS) == 2
    assert value(samples, "blueque_tick_duration_seconds_sum", VIDEOS) == pytest.approx(0.204)
    assert value(samples, "blueque_tick_duration_seconds_bucket", VIDEOS, le="0.005") == 1
    assert value(samples, "blueque_tick_duration_seconds_bucket", VIDEOS, le="0.25") == 2
    assert samples[("blueque_leader", frozenset())] == 1
    assert any(name.startswith("process_") for name, _ in samples)  # RSS, CPU of the operator

    metrics.set_leader(False)
    assert scrape(server)[("blueque_leader", frozenset())] == 0


def test_counters_start_at_zero_when_a_queue_is_first_seen(
    metrics: Metrics, server: MetricsServer
) -> None:
    metrics.observe_tick(THUMBS, 0.001, pending=0)
    samples = scrape(server)
    for name in ("blueque_reaped_tasks_total", "blueque_redis_errors_total"):
        assert value(samples, name, THUMBS) == 0
    for direction in ("up", "down"):
        assert value(samples, "blueque_scale_events_total", THUMBS, direction=direction) == 0


def test_forget_removes_every_series_of_one_queue(metrics: Metrics, server: MetricsServer) -> None:
    for key in (VIDEOS, THUMBS):
        metrics.observe_tick(
            key, 0.01, pending=1, running=1, scheduled=1, desired_replicas=2, replicas=2
        )
        metrics.scaled(key, "down")
        metrics.reaped(key)
        metrics.redis_error(key)
    before = scrape(server)
    assert len(series_of(before, VIDEOS)) >= 10

    metrics.forget(VIDEOS)
    metrics.forget(("media", "never-seen", "x"))  # no error; any (ns, name, queue) tuple
    after = scrape(server)
    assert series_of(after, VIDEOS) == set()
    assert series_of(after, THUMBS) == series_of(before, THUMBS)
    assert value(after, "blueque_scale_events_total", THUMBS, direction="down") == 1

    # Seen again (re-created with the same name): counted from zero.
    metrics.scaled(VIDEOS, "up")
    again = scrape(server)
    assert value(again, "blueque_scale_events_total", VIDEOS, direction="up") == 1
    assert value(again, "blueque_reaped_tasks_total", VIDEOS) == 0


def test_registries_are_separate(metrics: Metrics) -> None:
    other = Metrics(process_metrics=False)
    metrics.scaled(VIDEOS, "up")
    assert other.registry.get_sample_value("blueque_leader") == 0
    labels = {"namespace": "media", "bluequeue": "videos", "queue": "videos", "direction": "up"}
    assert other.registry.get_sample_value("blueque_scale_events_total", labels) is None
    assert metrics.registry.get_sample_value("blueque_scale_events_total", labels) == 1
    assert REGISTRY.get_sample_value("blueque_leader") is None  # not the global registry
    with pytest.raises(ValueError, match="direction"):
        metrics.scaled(VIDEOS, "sideways")  # type: ignore[arg-type]
