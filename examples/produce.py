"""Enqueues N example tasks of mixed length with the bundled client.

    BLUEQUE_REDIS_URL=redis://localhost:6379/0 python examples/produce.py 50
    python examples/produce.py 200 --min-seconds 0.2 --max-seconds 2 --wait

Redis comes from the same variables a worker reads (BLUEQUE_REDIS_URL, else REDIS_URL;
BLUEQUE_REDIS_PASSWORD; BLUEQUE_REDIS_CLUSTER; BLUEQUE_NAMESPACE), the queue from `--queue`,
else BLUEQUE_QUEUE, else `videos`. All tasks go in one round trip. With `--wait` it waits for
every task to finish and exits 1 if any did not complete.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence

from blueque import Client, RedisEnvironment

DEFAULT_QUEUE = "videos"


def parameters(
    count: int, min_s: float, max_s: float, rng: random.Random
) -> list[dict[str, float]]:
    """The tasks' parameters: video numbers 1..count, durations uniform in [min_s, max_s]."""
    return [
        {"video": n, "seconds": round(rng.uniform(min_s, max_s), 3)} for n in range(1, count + 1)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("count", type=int, help="how many tasks")
    parser.add_argument("--queue", default=os.environ.get("BLUEQUE_QUEUE") or DEFAULT_QUEUE)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    parser.add_argument("--max-seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=None, help="for repeatable durations")
    parser.add_argument("--wait", action="store_true", help="wait until every task finished")
    parser.add_argument("--timeout", type=float, default=600.0, help="with --wait: in all, s")
    args = parser.parse_args(argv)
    if args.count < 1 or not 0 <= args.min_seconds <= args.max_seconds:
        parser.error("need count >= 1 and 0 <= --min-seconds <= --max-seconds")

    where = RedisEnvironment.from_env()
    params = parameters(args.count, args.min_seconds, args.max_seconds, random.Random(args.seed))
    with Client(
        where.url, password=where.password, cluster=where.cluster, namespace=where.namespace
    ) as client:
        queue = client.get_queue(args.queue)
        ids = queue.enqueue_many(params)
        print(f"enqueued {len(ids)} tasks on {args.queue}")
        if not args.wait:
            return 0
        deadline = time.monotonic() + args.timeout
        states: Counter[str] = Counter()
        for task_id in ids:
            left = max(0.001, deadline - time.monotonic())
            states[str(client.get_task(task_id).wait(left).status)] += 1
    print(", ".join(f"{state}: {n}" for state, n in sorted(states.items())))
    return 0 if states.keys() == {"complete"} else 1


if __name__ == "__main__":
    sys.exit(main())
