"""Custom objects through the official Kubernetes Python client's CustomObjectsApi.

The CronTab definition is established by the caller. Creates an object (defaults filled in),
lists it, is refused with 422 for a bad one, patches it (merge), reads it under the other
served version, and deletes it. Exits non-zero with a message on the first failure.
"""

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from checks import fail

GROUP, NS, PLURAL = "stable.example.com", "default", "crontabs"


def main():
    config.load_kube_config()
    api = client.CustomObjectsApi()
    body = {"apiVersion": f"{GROUP}/v1", "kind": "CronTab", "metadata": {"name": "py"},
            "spec": {"cronSpec": "0 * * * *", "image": "py:1"}}
    created = api.create_namespaced_custom_object(GROUP, "v1", NS, PLURAL, body)
    if created["spec"].get("replicas") != 1:
        fail(f"not defaulted: {created}")
    listed = api.list_namespaced_custom_object(GROUP, "v1", NS, PLURAL)
    if [o["metadata"]["name"] for o in listed["items"]] != ["py"]:
        fail(f"list: {listed}")
    if listed.get("kind") != "CronTabList":
        fail(f"list kind: {listed.get('kind')}")
    bad = dict(body, metadata={"name": "py-bad"}, spec={"cronSpec": "0 * * * *", "image": "x", "size": "huge"})
    try:
        api.create_namespaced_custom_object(GROUP, "v1", NS, PLURAL, bad)
        fail("a bad object was accepted")
    except ApiException as e:
        if e.status != 422 or "spec.size" not in e.body:
            fail(f"bad object: {e.status} {e.body}")
    patched = api.patch_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "py", {"spec": {"replicas": 3}})
    if patched["spec"]["replicas"] != 3:
        fail(f"patch: {patched}")
    beta = api.get_namespaced_custom_object(GROUP, "v1beta1", NS, PLURAL, "py")
    if beta["apiVersion"] != f"{GROUP}/v1beta1" or beta["spec"]["replicas"] != 3:
        fail(f"v1beta1: {beta}")
    api.delete_namespaced_custom_object(GROUP, "v1", NS, PLURAL, "py")
    if api.list_cluster_custom_object(GROUP, "v1", PLURAL)["items"]:
        fail("still listed after delete")
    print("custom objects ok")


main()
