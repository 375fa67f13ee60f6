"""The operator owns a worker Deployment per BlueQueue: created, reconciled, garbage-collected."""

from __future__ import annotations

import pytest

from blueque import Client
from devtools.localkube import ApiClient, ApiError
from devtools.operator_runs import Operators
from devtools.processes import wait_until
from tests.kube.operator_support import (
    bluequeue,
    bq_path,
    deployment_path,
    env_of,
    wait_condition,
    wait_reason,
)

pytestmark = pytest.mark.kube


def test_a_bluequeue_gets_its_deployment_which_is_reconciled_and_goes_with_it(
    kube_admin: ApiClient, kube_namespace: str, operator_runs: Operators, redis_url: str
) -> None:
    ns = kube_namespace
    operator_runs.start([ns], lease_namespace=ns)
    created = kube_admin.create(
        bq_path(ns), bluequeue("clips", redis_url, tasks={"maxAttempts": 5})
    )
    uid = created["metadata"]["uid"]

    deployment = kube_admin.wait_for(
        deployment_path(ns, "clips"), lambda _: True, what="the worker Deployment"
    )
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == uid
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "blueque-worker",
        "blueque.io/bluequeue": "clips",
    }
    env = env_of(deployment)
    assert env["BLUEQUE_QUEUE"] == "clips"
    assert env["BLUEQUE_REDIS_URL"] == redis_url
    assert env["BLUEQUE_OWNER"] == uid
    assert env["BLUEQUE_WORKER_ID"] == "$(POD_NAME)"
    assert deployment["spec"]["replicas"] == 0

    ready = wait_condition(kube_admin, ns, "clips", "Ready", "True")
    assert ready["status"]["queue"] == "clips"
    with Client(redis_url) as client:
        assert client.get_queue("clips").config().max_attempts == 5

    # A hand edit of the template is put back.
    kube_admin.patch(
        deployment_path(ns, "clips"),
        {"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 5}}}},
    )
    wait_until(
        lambda: (
            kube_admin.get(deployment_path(ns, "clips"))["spec"]["template"]["spec"][
                "terminationGracePeriodSeconds"
            ]
            == 30
        ),
        15,
        what="the hand edit to be reconciled",
    )
    wait_reason(kube_admin, ns, "clips", "DeploymentCreated")

    # Deleting the BlueQueue takes the Deployment (owner reference), never the tasks.
    kube_admin.patch(bq_path(ns, "clips"), {"spec": {"scaling": {"paused": True}}})
    wait_until(
        lambda: kube_admin.get(bq_path(ns, "clips"))["status"]["observedGeneration"] == 2,
        15,
        what="the pause to be seen",
    )
    with Client(redis_url) as client:
        task_id = client.get_queue("clips").enqueue({"echo": 1})
    kube_admin.delete(bq_path(ns, "clips"))

    def gone() -> bool:
        try:
            kube_admin.get(deployment_path(ns, "clips"))
        except ApiError as exc:
            return exc.status == 404
        return False

    # The garbage collector learns of a new CRD's kind within its 30 s discovery period.
    wait_until(gone, 60, what="the Deployment to be garbage-collected")
    with Client(redis_url) as client:
        assert client.get_task(task_id).status == "pending"
        assert client.get_queue("clips").stats().pending == 1
