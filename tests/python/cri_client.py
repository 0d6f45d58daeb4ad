"""The CRI (runtime.v1) driven by gRPC C-core's Python binding, with stubs generated from the
proto k8s-cri ships, over the socket path as given: grpcio sends that path, percent-encoded,
as the HTTP/2 :authority.

usage: cri_client.py PROTO_DIR SOCKET IMAGE
"""

import os
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

proto_dir, socket, image = sys.argv[1:4]
out = tempfile.mkdtemp()
if protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}",
                os.path.join(proto_dir, "v1.proto")]) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, out)
import v1_pb2 as cri  # noqa: E402
import v1_pb2_grpc as cri_grpc  # noqa: E402

channel = grpc.insecure_channel(f"unix:{socket}")
runtime = cri_grpc.RuntimeServiceStub(channel)
images = cri_grpc.ImageServiceStub(channel)


def step(what):
    print(f"-- {what}", flush=True)


step("version")
v = runtime.Version(cri.VersionRequest(version="v1"), timeout=10)
assert v.runtime_api_version == "v1", v
print("runtime", v.runtime_name, v.runtime_version)

step("pull, status, list")
ref = images.PullImage(cri.PullImageRequest(image=cri.ImageSpec(image=image)), timeout=120).image_ref
assert ref, "pull returned no image ref"
status = images.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=image)), timeout=10)
assert status.image.id == ref, (status, ref)
listed = images.ListImages(cri.ListImagesRequest(), timeout=10).images
assert any(i.id == ref for i in listed), listed

step("pod sandbox")
logs = tempfile.mkdtemp()
pod_config = cri.PodSandboxConfig(
    metadata=cri.PodSandboxMetadata(name="grpcio", uid="grpcio-uid", namespace="default", attempt=0),
    hostname="grpcio-pod",
    log_directory=logs,
)
pod = runtime.RunPodSandbox(cri.RunPodSandboxRequest(config=pod_config), timeout=60).pod_sandbox_id
pods = runtime.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=10).items
assert any(p.id == pod and p.state == cri.SANDBOX_READY for p in pods), pods

step("container lifecycle")
container_config = cri.ContainerConfig(
    metadata=cri.ContainerMetadata(name="main", attempt=0),
    image=cri.ImageSpec(image=ref),
    command=["sh", "-c", "echo started; exec sleep 300"],
    log_path="main.log",
)
cid = runtime.CreateContainer(cri.CreateContainerRequest(
    pod_sandbox_id=pod, config=container_config, sandbox_config=pod_config), timeout=60).container_id
runtime.StartContainer(cri.StartContainerRequest(container_id=cid), timeout=60)
state = runtime.ContainerStatus(cri.ContainerStatusRequest(container_id=cid), timeout=10).status
assert state.state == cri.CONTAINER_RUNNING, state

step("exec sync")
r = runtime.ExecSync(cri.ExecSyncRequest(
    container_id=cid, cmd=["sh", "-c", "hostname; echo oops >&2; exit 3"], timeout=20), timeout=30)
assert r.exit_code == 3, r
assert r.stdout == b"grpcio-pod\n", r.stdout
assert r.stderr == b"oops\n", r.stderr

step("stop and remove")
runtime.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=2), timeout=30)
deadline = time.time() + 20
while True:
    state = runtime.ContainerStatus(cri.ContainerStatusRequest(container_id=cid), timeout=10).status
    if state.state == cri.CONTAINER_EXITED:
        break
    assert time.time() < deadline, state
    time.sleep(0.1)
log = open(os.path.join(logs, "main.log")).read()
assert "started" in log, log
runtime.RemoveContainer(cri.RemoveContainerRequest(container_id=cid), timeout=30)
runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=30)
runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=30)
assert not runtime.ListContainers(cri.ListContainersRequest(), timeout=10).containers
assert not runtime.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=10).items

step("remove image")
images.RemoveImage(cri.RemoveImageRequest(image=cri.ImageSpec(image=ref)), timeout=30)
gone = images.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=image)), timeout=10)
assert not gone.HasField("image"), gone

# A bad request gets a gRPC error, not a dropped connection.
try:
    runtime.StartContainer(cri.StartContainerRequest(container_id="no-such-container"), timeout=10)
    sys.exit("starting a missing container succeeded")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.NOT_FOUND, e
    print("missing container:", e.code(), e.details())

print("all calls succeeded")
