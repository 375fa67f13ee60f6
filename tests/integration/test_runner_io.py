"""The sync runner's own IO: one kept connection per client, which a second thread and a
forked child do not share (they take their own, as redis-py would)."""

from __future__ import annotations

import os
import threading

from blueque import Client


def local_port(client: Client) -> int:
    conn = client.runner._own  # the connection the runner keeps
    assert conn is not None and conn._sock is not None
    return int(conn._sock.getsockname()[1])


def test_threads_share_a_client(client_standalone: Client) -> None:
    queue = client_standalone.get_queue("io.threads")
    ids: list[list[str]] = [[], []]

    def produce(mine: list[str]) -> None:
        for i in range(300):
            mine.append(queue.enqueue(i))
            assert queue.stats().pending >= 1

    threads = [threading.Thread(target=produce, args=(mine,)) for mine in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pending = client_standalone.redis.lrange(queue.keys.pending, 0, -1)
    assert sorted(pending) == sorted(ids[0] + ids[1])
    assert [t.parameters for t in queue.get_tasks(ids[0])] == list(range(300))


def test_a_forked_child_uses_a_connection_of_its_own(client_standalone: Client) -> None:
    queue = client_standalone.get_queue("io.fork")
    queue.enqueue("parent")
    parent_port = local_port(client_standalone)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: use the inherited client, report its connection's port
        code = 1
        try:
            os.close(read_fd)
            queue.enqueue("child")
            os.write(write_fd, str(local_port(client_standalone)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        child_port = int(pipe.read() or 0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_port not in (0, parent_port)
    assert local_port(client_standalone) == parent_port  # the parent's is untouched
    assert [t.parameters for t in queue.tasks("pending")] == ["parent", "child"]
