"""Concurrent writers on one object through the official Kubernetes Python client.

Eight clients patch one ConfigMap 100 times each (strategic merge, JSON merge, JSON patch and
server-side apply in turn), none naming a resourceVersion: every patch must succeed and none
may be lost. Then deletes race unconditional updates: the delete always succeeds and an update
sees only success or NotFound, never 409. Finally a patch and an update that do name a stale
resourceVersion still get their 409, and scale patches racing status writes on one
ReplicationController all apply. Exits non-zero with a message on the first failure.
"""

import sys
import threading

from kubernetes import client, config
from kubernetes.client.rest import ApiException

WRITERS = 8
PATCHES = 100
RACES = 30
SCALES = 60
NS = "default"


def api():
    return client.CoreV1Api(config.new_client_from_config())


def patch_one(core, name, writer, i, failures):
    key = f"w{writer}-{i}"
    kind = i % 4
    try:
        if kind == 0:
            core.patch_namespaced_config_map(
                name, NS, {"data": {key: "strategic"}},
                _content_type="application/strategic-merge-patch+json",
            )
        elif kind == 1:
            core.patch_namespaced_config_map(
                name, NS, {"data": {key: "merge"}}, _content_type="application/merge-patch+json"
            )
        elif kind == 2:
            core.patch_namespaced_config_map(
                name, NS, [{"op": "add", "path": f"/data/{key}", "value": "json"}],
                _content_type="application/json-patch+json",
            )
        else:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": NS},
                "data": {key: "apply"},
            }
            core.patch_namespaced_config_map(
                name, NS, body, field_manager=f"writer-{key}",
                _content_type="application/apply-patch+yaml",
            )
    except ApiException as e:
        failures.append(f"{key} (patch type {kind}): {e.status} {e.reason}: {e.body}")
    except Exception as e:  # noqa: BLE001 - any failure of a writer fails the run
        failures.append(f"{key} (patch type {kind}): {e!r}")


def concurrent_patches(core):
    name = "contended"
    core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"seed": "x"})
    )
    failures = []

    def writer(n):
        own = api()
        for i in range(PATCHES):
            patch_one(own, name, n, i, failures)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit(f"{len(failures)} of {WRITERS * PATCHES} patches failed, first: {failures[0]}")
    data = core.read_namespaced_config_map(name, NS).data
    missing = [
        f"w{w}-{i}" for w in range(WRITERS) for i in range(PATCHES) if f"w{w}-{i}" not in data
    ]
    if missing:
        sys.exit(f"{len(missing)} patches were acknowledged but lost, e.g. {missing[:5]}")
    print(f"concurrent patches: {WRITERS} writers x {PATCHES} patches, all applied")


def deletes_racing_updates(core):
    spurious = []
    for n in range(RACES):
        name = f"race-{n}"
        core.create_namespaced_config_map(
            NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"n": "0"})
        )
        stop = threading.Event()
        updater_api = api()

        def updater():
            i = 0
            while not stop.is_set():
                i += 1
                body = client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(name=name), data={"n": str(i)}
                )
                try:
                    updater_api.replace_namespaced_config_map(name, NS, body)
                except ApiException as e:
                    if e.status == 404:
                        return
                    spurious.append(f"update of {name}: {e.status} {e.reason}")
                    return
                except Exception as e:  # noqa: BLE001
                    spurious.append(f"update of {name}: {e!r}")
                    return

        t = threading.Thread(target=updater)
        t.start()
        try:
            core.delete_namespaced_config_map(name, NS)
        except ApiException as e:
            spurious.append(f"delete of {name}: {e.status} {e.reason}: {e.body}")
        stop.set()
        t.join()
    if spurious:
        sys.exit(f"{len(spurious)} spurious errors in {RACES} races, first: {spurious[0]}")
    print(f"deletes racing updates: {RACES} races, no conflict")


def stale_versions_still_conflict(core):
    name = "versioned"
    created = core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"a": "1"})
    )
    stale = created.metadata.resource_version
    core.patch_namespaced_config_map(name, NS, {"data": {"a": "2"}})
    for what, call in [
        (
            "patch",
            lambda: core.patch_namespaced_config_map(
                name, NS, {"metadata": {"resourceVersion": stale}, "data": {"a": "3"}}
            ),
        ),
        (
            "update",
            lambda: core.replace_namespaced_config_map(
                name,
                NS,
                client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(name=name, resource_version=stale),
                    data={"a": "4"},
                ),
            ),
        ),
        (
            "delete",
            lambda: core.delete_namespaced_config_map(
                name, NS, body=client.V1DeleteOptions(
                    preconditions=client.V1Preconditions(resource_version=stale)
                )
            ),
        ),
    ]:
        try:
            call()
            sys.exit(f"a {what} naming the stale resourceVersion {stale} succeeded")
        except ApiException as e:
            if e.status != 409:
                sys.exit(f"a {what} naming a stale resourceVersion got {e.status}, not 409")
    if core.read_namespaced_config_map(name, NS).data != {"a": "2"}:
        sys.exit("a refused write changed the object")
    print("stale resourceVersions: 409 for patch, update and delete")


def scale_racing_status_writes(core):
    name = "scaled"
    labels = {"app": name}
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="pause:3.9")]),
    )
    core.create_namespaced_replication_controller(
        NS,
        client.V1ReplicationController(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1ReplicationControllerSpec(replicas=0, selector=labels, template=template),
        ),
    )
    stop = threading.Event()
    failures = []
    status_api = api()

    def status_writer():
        i = 0
        while not stop.is_set():
            i += 1
            try:
                status_api.patch_namespaced_replication_controller_status(
                    name, NS, {"status": {"replicas": 0, "observedGeneration": i}}
                )
            except ApiException as e:
                failures.append(f"status write: {e.status} {e.reason}: {e.body}")
                return

    t = threading.Thread(target=status_writer)
    t.start()
    for i in range(SCALES):
        try:
            core.patch_namespaced_replication_controller_scale(
                name, NS, {"spec": {"replicas": i % 2}}
            )
        except ApiException as e:
            failures.append(f"scale {i}: {e.status} {e.reason}: {e.body}")
    stop.set()
    t.join()
    if failures:
        sys.exit(f"{len(failures)} writes failed, first: {failures[0]}")
    want = (SCALES - 1) % 2
    got = core.read_namespaced_replication_controller_scale(name, NS).spec.replicas
    if got != want:
        sys.exit(f"the last scale ({want}) was lost: {got}")
    core.delete_namespaced_replication_controller(name, NS)
    print(f"scale racing status writes: {SCALES} scales, no conflict")


def main():
    config.load_kube_config()
    core = api()
    concurrent_patches(core)
    deletes_racing_updates(core)
    stale_versions_still_conflict(core)
    scale_racing_status_writes(core)


if __name__ == "__main__":
    main()
