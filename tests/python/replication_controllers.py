"""A ReplicationController through the official Kubernetes Python client.

Created from the client's typed models with only the template's labels (the server fills in the
selector, the labels and the replica count); its pods come up on the simulated nodes and its
status counts them; the scale subresource reads and scales it as the client's V1Scale; one
whose selector misses its template is refused with 422 and not stored; deleting it takes its
pods. Exits non-zero with a message on the first failure.
"""

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from checks import fail, wait

NS = "default"
LABELS = {"app": "pyrc"}


def live_pods(core):
    pods = core.list_namespaced_pod(NS, label_selector="app=pyrc").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def controller(name, selector=None):
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=LABELS),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="app", image="registry.k8s.io/pause:3.9")]
        ),
    )
    return client.V1ReplicationController(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ReplicationControllerSpec(selector=selector, template=template),
    )


def main():
    api_client = config.new_client_from_config()
    core = client.CoreV1Api(api_client)

    created = core.create_namespaced_replication_controller(NS, controller("pyrc"))
    if created.spec.selector != LABELS or created.metadata.labels != LABELS:
        fail(f"selector and labels not defaulted from the template: {created}")
    if created.spec.replicas != 1:
        fail(f"replicas not defaulted: {created.spec}")

    scale = core.patch_namespaced_replication_controller_scale(
        "pyrc", NS, {"spec": {"replicas": 2}}
    )
    if scale.spec.replicas != 2 or scale.metadata.name != "pyrc":
        fail(f"scale: {scale}")

    def ready():
        rc = core.read_namespaced_replication_controller_status("pyrc", NS)
        s = rc.status
        return rc if s is not None and s.ready_replicas == 2 and s.replicas == 2 else None

    rc = wait("2 ready replicas", ready)
    pods = live_pods(core)
    owners = {p.metadata.owner_references[0].uid for p in pods}
    if len(pods) != 2 or owners != {rc.metadata.uid}:
        fail(f"pods: {[(p.metadata.name, p.metadata.owner_references) for p in pods]}")
    scale = core.read_namespaced_replication_controller_scale("pyrc", NS)
    if scale.status.replicas != 2 or scale.status.selector != "app=pyrc":
        fail(f"scale status: {scale}")

    try:
        core.create_namespaced_replication_controller(NS, controller("bad", {"app": "other"}))
        fail("a selector that misses the template was accepted")
    except ApiException as e:
        if e.status != 422 or "selector" not in e.body:
            fail(f"bad controller: {e.status} {e.body}")
    try:
        core.read_namespaced_replication_controller("bad", NS)
        fail("the refused controller was stored")
    except ApiException as e:
        if e.status != 404:
            fail(f"reading the refused controller: {e.status} {e.body}")

    core.delete_namespaced_replication_controller("pyrc", NS)
    wait("the pods to go", lambda: not core.list_namespaced_pod(NS, label_selector="app=pyrc").items)
    print("replicationcontroller ok")


if __name__ == "__main__":
    main()
