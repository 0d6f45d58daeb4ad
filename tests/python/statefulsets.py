"""A StatefulSet through the official Kubernetes Python client.

Created from the client's typed models and read back with the server's defaults; its pods come
up under their stable names on the simulated nodes; its ControllerRevision and Scale read as
the client's models; the scale subresource scales it down from the highest ordinal; a set whose
selector misses its template is refused with 422 and not stored; deleting the set takes its
pods. Exits non-zero with a message on the first failure.
"""

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from checks import fail, wait

NS = "default"
LABELS = {"app": "py"}


def live_pod_names(core):
    pods = core.list_namespaced_pod(NS, label_selector="app=py").items
    return sorted(p.metadata.name for p in pods if p.metadata.deletion_timestamp is None)


def stateful_set(name, selector):
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=LABELS),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="app", image="registry.k8s.io/pause:3.9")]
        ),
    )
    return client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1StatefulSetSpec(
            service_name=name,
            replicas=2,
            selector=client.V1LabelSelector(match_labels=selector),
            template=template,
        ),
    )


def ready_set(apps):
    s = apps.read_namespaced_stateful_set_status("py", NS)
    return s if s.status is not None and s.status.ready_replicas == 2 else None


def main():
    api_client = config.new_client_from_config()
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)

    created = apps.create_namespaced_stateful_set(NS, stateful_set("py", LABELS))
    spec = created.spec
    if spec.pod_management_policy != "OrderedReady" or spec.revision_history_limit != 10:
        fail(f"not defaulted: {spec}")
    if spec.update_strategy.rolling_update.partition != 0:
        fail(f"partition not defaulted: {spec.update_strategy}")

    s = wait("2 ready replicas", lambda: ready_set(apps))
    if live_pod_names(core) != ["py-0", "py-1"]:
        fail(f"pods: {live_pod_names(core)}")
    revisions = apps.list_namespaced_controller_revision(NS, label_selector="app=py").items
    if len(revisions) != 1 or revisions[0].revision != 1:
        fail(f"revisions: {revisions}")
    if revisions[0].metadata.name != s.status.update_revision:
        fail(f"update revision {s.status.update_revision} is not {revisions[0].metadata.name}")

    scale = apps.patch_namespaced_stateful_set_scale("py", NS, {"spec": {"replicas": 1}})
    if scale.spec.replicas != 1 or scale.status.selector != "app=py":
        fail(f"scale: {scale}")
    wait("scale down to py-0", lambda: live_pod_names(core) == ["py-0"])

    try:
        apps.create_namespaced_stateful_set(NS, stateful_set("bad", {"app": "other"}))
        fail("a selector that misses the template was accepted")
    except ApiException as e:
        if e.status != 422:
            fail(f"bad set: {e.status} {e.body}")
    try:
        apps.read_namespaced_stateful_set("bad", NS)
        fail("the refused set was stored")
    except ApiException as e:
        if e.status != 404:
            fail(f"reading the refused set: {e.status} {e.body}")

    apps.delete_namespaced_stateful_set("py", NS)
    wait("the pods to go", lambda: not core.list_namespaced_pod(NS, label_selector="app=py").items)
    print("statefulset ok")


if __name__ == "__main__":
    main()
