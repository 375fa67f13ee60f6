"""The scaling view's decisions without Kubernetes: which BlueQueue drives which queue (by the
queue's claim and the key prefix, never by URL), the history kept in memory, and the document
a tick sends, from a reader that stands in for the API server and a queue claimed on
fakeredis."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis

from blueque.aio import AsyncClient
from blueque.dashboard.hub import Hub
from blueque.dashboard.scaling import BlueQueueRef, History, ScalingWatcher, why_unmatched
from blueque.dashboard.settings import DashboardSettings


def bluequeue(
    name: str,
    uid: str,
    *,
    queue: str | None = None,
    prefix: str | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"redis": {"url": "redis://anywhere:6379/0"}}
    if queue:
        spec["queue"] = queue
    if prefix:
        spec["redis"]["keyPrefix"] = prefix
    return {
        "metadata": {"namespace": "team", "name": name, "uid": uid},
        "spec": spec,
        "status": status or {},
    }


def test_a_bluequeue_matches_by_claim_and_key_prefix() -> None:
    ref = BlueQueueRef.parse(bluequeue("videos", "uid-1"))
    assert (ref.queue, ref.key_prefix) == ("videos", "blueque")
    assert why_unmatched(ref, {"videos": "uid-1"}, "blueque") is None
    assert "another BlueQueue" in str(why_unmatched(ref, {"videos": "uid-2"}, "blueque"))
    assert "not claimed" in str(why_unmatched(ref, {"videos": None}, "blueque"))
    assert "no queue" in str(why_unmatched(ref, {}, "blueque"))
    other = BlueQueueRef.parse(bluequeue("videos", "uid-1", prefix="app"))
    assert "key prefix" in str(why_unmatched(other, {"videos": "uid-1"}, "blueque"))
    named = BlueQueueRef.parse(bluequeue("bq", "uid-3", queue="mail"))
    assert named.queue == "mail"


def test_history_is_a_bounded_ring_and_events_outlive_their_listing() -> None:
    history = History(history_s=10, interval_s=2)
    ref = BlueQueueRef.parse(bluequeue("v", "u", status={"replicas": 2, "desiredReplicas": 3}))
    for t in range(20):
        history.sample(ref, t)
    assert len(history.samples["u"]) == 5
    assert list(history.samples["u"])[-1] == [19, 2, 3, None, None]
    event = {
        "metadata": {"uid": "e1"},
        "reason": "ScaledUp",
        "message": "0 -> 3: scale up to 3: demand 3",
        "type": "Normal",
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }
    history.remember("u", [event])
    history.remember("u", [])  # the API server deleted it (an hour later): still kept
    assert [e["reason"] for e in history.events["u"].values()] == ["ScaledUp"]
    history.forget_except(set())
    assert history.samples == {} and history.events == {}


class FakeReader:
    source = "test reader"

    def __init__(self, objects: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        self.objects, self._events = objects, events

    def bluequeues(self) -> list[dict[str, Any]]:
        return self.objects

    def events(self, namespace: str) -> list[dict[str, Any]]:
        return self._events

    def close(self) -> None:
        pass


def test_a_tick_sends_the_matched_bluequeue_with_its_history_and_events() -> None:
    async def scenario() -> dict[str, Any]:
        fake = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
        async with AsyncClient(redis=fake) as client:
            queue = client.get_queue("videos")
            await queue.enqueue(1)
            assert (await queue.claim_owner("uid-1", 30)).acquired
            status = {
                "replicas": 1,
                "desiredReplicas": 2,
                "pending": 1,
                "running": 0,
                "lastScaleReason": "scale up to 2: demand 2",
                "conditions": [{"type": "Ready", "status": "True", "reason": "Scaling"}],
            }
            objects = [bluequeue("videos", "uid-1", status=status), bluequeue("other", "uid-9")]
            events = [
                {
                    "metadata": {"uid": "e1"},
                    "involvedObject": {"uid": "uid-1"},
                    "reason": "ScaledUp",
                    "message": "0 -> 2",
                    "type": "Normal",
                    "lastTimestamp": "2026-01-01T00:00:00Z",
                }
            ]
            hub = Hub(client, DashboardSettings())
            watcher = ScalingWatcher(hub, FakeReader(objects, events), interval_s=1)  # type: ignore[arg-type]
            page = hub.register(None, ["scaling"])
            other_page = hub.register(None)
            await watcher.tick()
            await watcher.tick()
            assert [m.kind for m in page.buffer] == ["scaling", "scaling"]
            assert other_page.buffer == type(other_page.buffer)()  # not for other views
            document: dict[str, Any] = hub.extras["scaling"]
            return document

    doc = asyncio.run(scenario())
    videos, other = doc["bluequeues"][1], doc["bluequeues"][0]
    assert (videos["name"], videos["matched"], videos["desired"]) == ("videos", True, 2)
    assert [row[1:] for row in videos["history"]] == [[1, 2, 1, 0], [1, 2, 1, 0]]
    assert [e["reason"] for e in videos["events"]] == ["ScaledUp"]
    assert videos["conditions"][0]["type"] == "Ready"
    assert (other["name"], other["matched"]) == ("other", False)
    assert "no queue other" in other["unmatched"]
