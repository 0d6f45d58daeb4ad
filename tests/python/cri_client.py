"""The CRI (runtime.v1) driven by gRPC C-core's Python binding, with stubs generated from the
proto k8s-cri ships, over the socket path as given: grpcio sends that path, percent-encoded,
as the HTTP/2 :authority.

usage: cri_client.py PROTO_DIR SOCKET IMAGE APP_IMAGE IPC_IMAGE

APP_IMAGE runs as user "app" (uid 1234, gid 2345, also in group 77) by its config. IPC_IMAGE
has tests/sentry/sysv_ipc.c built as /bin/sysv_ipc.
"""

import os
import subprocess
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

proto_dir, socket, image, app_image, ipc_image = sys.argv[1:6]
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


def wait_exited(container, limit):
    """The container's status once it has exited; fails after `limit` seconds."""
    deadline = time.time() + limit
    while True:
        state = runtime.ContainerStatus(cri.ContainerStatusRequest(container_id=container), timeout=10).status
        if state.state == cri.CONTAINER_EXITED:
            return state
        assert time.time() < deadline, state
        time.sleep(0.1)


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

assert status.image.uid.value == 0 and status.image.username == "", status.image
images.PullImage(cri.PullImageRequest(image=cri.ImageSpec(image=app_image)), timeout=120)
app = images.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=app_image)), timeout=10)
assert app.image.username == "app" and not app.image.HasField("uid"), app.image

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
# No DNS settings in the pod config: a resolver file exists anyway.
r = runtime.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=["cat", "/etc/resolv.conf"], timeout=20), timeout=30)
assert r.exit_code == 0, r


def exec_in(name, image_ref, script, **security):
    """Runs `script` with sh in a new container of `image_ref` with the given security context;
    returns the ExecSync response. The container is addressed by an id prefix throughout."""
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=name), image=cri.ImageSpec(image=image_ref),
        command=["sh", "-c", "exec sleep 300"],
        linux=cri.LinuxContainerConfig(security_context=cri.LinuxContainerSecurityContext(**security)))
    c = runtime.CreateContainer(cri.CreateContainerRequest(
        pod_sandbox_id=pod, config=config, sandbox_config=pod_config), timeout=60).container_id
    runtime.StartContainer(cri.StartContainerRequest(container_id=c[:12]), timeout=60)
    r = runtime.ExecSync(cri.ExecSyncRequest(container_id=c[:12], cmd=["sh", "-c", script], timeout=20), timeout=30)
    runtime.StopContainer(cri.StopContainerRequest(container_id=c[:12], timeout=0), timeout=30)
    runtime.RemoveContainer(cri.RemoveContainerRequest(container_id=c[:12]), timeout=30)
    return r


def run_as(name, image_ref, **security):
    r = exec_in(name, image_ref, "id -u; id -g; id -G", **security)
    assert r.exit_code == 0, r
    return r.stdout.decode().split()


step("users: the image's, the security context's; ids by prefix")
# uid, gid, then every group: the primary one, the image's /etc/group entries naming the user,
# the security context's supplemental groups.
assert run_as("app", app_image) == ["1234", "2345", "2345", "77"]
assert run_as("numeric", ref, run_as_user=cri.Int64Value(value=1000),
              run_as_group=cri.Int64Value(value=3000), supplemental_groups=[5, 6]) \
    == ["1000", "3000", "3000", "5", "6"]
assert run_as("by-name", app_image, run_as_username="app")[:2] == ["1234", "2345"]
try:
    run_as("group-only", ref, run_as_group=cri.Int64Value(value=3000))
    sys.exit("run_as_group without a user was accepted")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    print("group without user:", e.details())
try:
    run_as("no-such-user", ref, run_as_username="nobody")
    sys.exit("an unknown user name was accepted")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "nobody" in e.details(), e

step("security context: capabilities, no_new_privs, seccomp, read-only paths")
status_of = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"
r = exec_in("default", ref, status_of)
fields = dict(line.split(":\t") for line in r.stdout.decode().splitlines())
# The container default: 14 capabilities, no filter.
assert fields["CapBnd"] == "00000000a80425fb" and fields["Seccomp"] == "0", fields
r = exec_in("locked", ref, status_of, no_new_privs=True,
            capabilities=cri.Capability(drop_capabilities=["ALL"], add_capabilities=["NET_BIND_SERVICE"]),
            seccomp=cri.SecurityProfile(profile_type=cri.SecurityProfile.RuntimeDefault))
fields = dict(line.split(":\t") for line in r.stdout.decode().splitlines())
assert fields == {"CapEff": "0000000000000400", "CapBnd": "0000000000000400",
                  "NoNewPrivs": "1", "Seccomp": "2"}, fields
profile = os.path.join(tempfile.mkdtemp(), "no-hostname.json")
with open(profile, "w") as f:
    f.write('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": '
            '[{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}')
r = exec_in("no-hostname", ref, "hostname renamed; echo status $?",
            seccomp=cri.SecurityProfile(profile_type=cri.SecurityProfile.Localhost, localhost_ref=profile))
assert b"status 1" in r.stdout and b"ermitted" in r.stderr, r
r = exec_in("read-only", ref, "touch /new; echo root $?; touch /tmp/x; echo tmp $?; "
            "echo 1 > /proc/sys/kernel/x; cat /etc/hostname | wc -c",
            readonly_rootfs=True, readonly_paths=["/proc/sys"], masked_paths=["/etc/hostname"])
out = r.stdout.decode().split()
assert out[:2] == ["root", "1"] and b"Read-only" in r.stderr and out[-1] == "0", r
volume = tempfile.mkdtemp()
try:
    runtime.CreateContainer(cri.CreateContainerRequest(pod_sandbox_id=pod, sandbox_config=pod_config, config=cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="rslave"), image=cri.ImageSpec(image=ref), command=["true"],
        mounts=[cri.Mount(container_path="/data", host_path=volume, propagation=cri.PROPAGATION_HOST_TO_CONTAINER)])),
        timeout=30)
    sys.exit("a mount with host-to-container propagation was accepted")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "propagation" in e.details(), e
try:
    exec_in("bad-profile", ref, "true", seccomp=cri.SecurityProfile(
        profile_type=cri.SecurityProfile.Localhost, localhost_ref="/no/such/profile.json"))
    sys.exit("a missing seccomp profile was accepted")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e

step("pid namespaces: the container's own by default, the pod's, a target's")


def started(name, command, **pid_ns):
    """A running container of `ref` whose security context names `pid_ns` (nothing if empty)."""
    linux = {}
    if pid_ns:
        linux["linux"] = cri.LinuxContainerConfig(security_context=cri.LinuxContainerSecurityContext(
            namespace_options=cri.NamespaceOption(**pid_ns)))
    config = cri.ContainerConfig(metadata=cri.ContainerMetadata(name=name), image=cri.ImageSpec(image=ref),
                                 command=command, **linux)
    c = runtime.CreateContainer(cri.CreateContainerRequest(
        pod_sandbox_id=pod, config=config, sandbox_config=pod_config), timeout=60).container_id
    runtime.StartContainer(cri.StartContainerRequest(container_id=c), timeout=60)
    return c


def ps(container):
    r = runtime.ExecSync(cri.ExecSyncRequest(container_id=container, cmd=["sh", "-c", "ps -o pid,args"], timeout=20),
                         timeout=30)
    assert r.exit_code == 0, r
    return r.stdout.decode()


def settled_ps(container, ok):
    """ps in the container until `ok(listing)` holds (a started container's shell may not have
    exec'd its program yet) or 20 s pass; the last listing."""
    deadline = time.time() + 20
    while True:
        listing = ps(container)
        if ok(listing) or time.time() > deadline:
            return listing
        time.sleep(0.2)


def first(listing):
    """The process listed first (the lowest pid) as (pid, args)."""
    pid, args = listing.splitlines()[1].split(None, 1)
    return pid, args


# The image has sh, cat and ls; busybox's sh runs its other applets itself.
own = started("own", ["sh", "-c", "exec sleep 301"])  # nothing said: CONTAINER, the kubelet's default
for container, mine, other in [(own, "sleep 301", "sleep 300"), (cid, "sleep 300", "sleep 301")]:
    listing = settled_ps(container, lambda l, mine=mine: first(l) == ("1", mine))
    assert first(listing) == ("1", mine) and other not in listing, listing
shared = [started(f"shared{i}", ["sh", "-c", f"exec sleep 30{i}"], pid=cri.POD) for i in (2, 3)]
listing = settled_ps(shared[1], lambda l: "sleep 302" in l and "sleep 303" in l)
assert "sleep 302" in listing and "sleep 303" in listing, listing
victim = next(line.split()[0] for line in listing.splitlines() if line.endswith("sleep 302"))
r = runtime.ExecSync(cri.ExecSyncRequest(container_id=shared[1], cmd=["sh", "-c", f"kill {victim}"], timeout=20), timeout=30)
assert r.exit_code == 0, r
assert wait_exited(shared[0], 20).exit_code == 128 + 15
target = started("target", ["sh", "-c", "exec sleep 304"], pid=cri.TARGET, target_id=cid)
listing = settled_ps(target, lambda l: "sleep 304" in l)
assert first(listing) == ("1", "sleep 300") and "sleep 304" in listing and "sleep 301" not in listing, listing
r = runtime.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo $PPID; kill -9 1; echo $?"],
                                         timeout=20), timeout=30)
assert r.stdout == b"0\n0\n", r  # an exec's parent is outside; its init ignores it
for bad, code in [({"target_id": "nope"}, grpc.StatusCode.NOT_FOUND), ({}, grpc.StatusCode.INVALID_ARGUMENT)]:
    try:
        started("bad-target", ["true"], pid=cri.TARGET, **bad)
        sys.exit(f"a TARGET namespace {bad} was accepted")
    except grpc.RpcError as e:
        assert e.code() == code, e
        print("bad target:", e.details())
for c in [own, target] + shared:
    runtime.StopContainer(cri.StopContainerRequest(container_id=c, timeout=0), timeout=30)
    runtime.RemoveContainer(cri.RemoveContainerRequest(container_id=c), timeout=30)
state = runtime.ContainerStatus(cri.ContainerStatusRequest(container_id=cid), timeout=10).status
assert state.state == cri.CONTAINER_RUNNING, state

step("stop and remove")
runtime.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=2), timeout=30)
wait_exited(cid, 20)
log = open(os.path.join(logs, "main.log")).read()
assert "started" in log, log
status = runtime.ContainerStatus(cri.ContainerStatusRequest(container_id=cid[:8]), timeout=10).status
assert status.id == cid, status
runtime.RemoveContainer(cri.RemoveContainerRequest(container_id=cid), timeout=30)
runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod[:10]), timeout=30)
pods = runtime.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=10).items
assert [p.state for p in pods if p.id == pod] == [cri.SANDBOX_NOTREADY], pods
runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=30)
# Removing again is fine; stopping what does not exist is NOT_FOUND, not a silent success.
runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=30)
try:
    runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id="nonexistent"), timeout=30)
    sys.exit("stopping a missing sandbox succeeded")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.NOT_FOUND, e
assert not runtime.ListContainers(cri.ListContainersRequest(), timeout=10).containers
assert not runtime.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=10).items

step("out of memory")
small_config = cri.PodSandboxConfig(
    metadata=cri.PodSandboxMetadata(name="small", uid="small", namespace="default"),
    linux=cri.LinuxPodSandboxConfig(resources=cri.LinuxContainerResources(memory_limit_in_bytes=16 << 20)))
small = runtime.RunPodSandbox(cri.RunPodSandboxRequest(config=small_config), timeout=60).pod_sandbox_id
hog = runtime.CreateContainer(cri.CreateContainerRequest(pod_sandbox_id=small, sandbox_config=small_config, config=cri.ContainerConfig(
    metadata=cri.ContainerMetadata(name="hog"), image=cri.ImageSpec(image=ref),
    # A string that doubles until memory runs out.
    command=["sh", "-c", "a=a; while :; do a=$a$a; done"])), timeout=60).container_id
runtime.StartContainer(cri.StartContainerRequest(container_id=hog), timeout=60)
state = wait_exited(hog, 60)
assert (state.exit_code, state.reason) == (137, "OOMKilled"), state
runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=small), timeout=30)

step("sysctls and namespaces")


def sandbox(name, **linux):
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, uid=name, namespace="default"),
        linux=cri.LinuxPodSandboxConfig(**linux))
    return runtime.RunPodSandbox(cri.RunPodSandboxRequest(config=config), timeout=60).pod_sandbox_id


tuned = sandbox("tuned", sysctls={"net.ipv4.ip_local_port_range": "40000 40100"})
# Read where the sandbox's sockets live: its network namespace on the node (named rf-<id>
# by this runtime).
seen = subprocess.run(["ip", "netns", "exec", f"rf-{tuned[:12]}", "cat",
                       "/proc/sys/net/ipv4/ip_local_port_range"], capture_output=True, text=True)
assert seen.stdout.split() == ["40000", "40100"], seen
runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=tuned), timeout=30)

# IPC sysctls become the limits of the sandbox's own IPC namespace: its /proc/sys shows them
# and System V IPC programs live by them.
ipc_config = cri.PodSandboxConfig(
    metadata=cri.PodSandboxMetadata(name="ipc", uid="ipc", namespace="default"),
    linux=cri.LinuxPodSandboxConfig(sysctls={
        "kernel.shmmax": "1048576", "kernel.msgmax": "4096", "kernel.sem": "250 256000 32 128"}))
ipc_pod = runtime.RunPodSandbox(cri.RunPodSandboxRequest(config=ipc_config), timeout=60).pod_sandbox_id
images.PullImage(cri.PullImageRequest(image=cri.ImageSpec(image=ipc_image)), timeout=120)
ipc_container = runtime.CreateContainer(cri.CreateContainerRequest(
    pod_sandbox_id=ipc_pod, sandbox_config=ipc_config, config=cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="ipc"), image=cri.ImageSpec(image=ipc_image),
        command=["sh", "-c", "exec sleep 300"])), timeout=60).container_id
runtime.StartContainer(cri.StartContainerRequest(container_id=ipc_container), timeout=60)
r = runtime.ExecSync(cri.ExecSyncRequest(container_id=ipc_container, cmd=[
    "cat", "/proc/sys/kernel/shmmax", "/proc/sys/kernel/msgmax", "/proc/sys/kernel/sem",
    "/proc/sys/kernel/msgmnb"], timeout=20), timeout=30)
assert (r.exit_code, r.stdout) == (0, b"1048576\n4096\n250\t256000\t32\t128\n16384\n"), r
r = runtime.ExecSync(cri.ExecSyncRequest(container_id=ipc_container, cmd=["/bin/sysv_ipc"],
                                         timeout=60), timeout=90)
out = r.stdout.decode()
assert r.exit_code == 0 and out.endswith("done\n"), r
for want in ["shminfo: max=1048576 ", "msginfo: pool=512000 map=16384 max=4096 ",
             "seminfo: map=1024000000 mni=128 mns=256000 mnu=1024000000 msl=250 opm=32 ",
             "child sees: 'from parent' nattch=2", "after child exit sem1=2 (undone)",
             "child got: 5 type=7 'seven'"]:
    assert want in out, (want, out)
print("ipc sysctls seen in the sandbox: shmmax=1048576 msgmax=4096", flush=True)
runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=ipc_pod), timeout=30)
runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=ipc_pod), timeout=30)

step("host port")
import socket as sockets  # noqa: E402

free = sockets.socket()
free.bind(("127.0.0.1", 0))
host_port = free.getsockname()[1]
free.close()
served_config = cri.PodSandboxConfig(
    metadata=cri.PodSandboxMetadata(name="served", uid="served", namespace="default"),
    port_mappings=[cri.PortMapping(protocol=cri.TCP, container_port=8080, host_port=host_port,
                                   host_ip="127.0.0.1")])
served = runtime.RunPodSandbox(cri.RunPodSandboxRequest(config=served_config), timeout=60).pod_sandbox_id
web = runtime.CreateContainer(cri.CreateContainerRequest(pod_sandbox_id=served, sandbox_config=served_config, config=cri.ContainerConfig(
    metadata=cri.ContainerMetadata(name="web"), image=cri.ImageSpec(image=ref),
    command=["sh", "-c", "echo through-the-host-port > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"])),
    timeout=60).container_id
runtime.StartContainer(cri.StartContainerRequest(container_id=web), timeout=60)
deadline = time.time() + 20
while True:
    try:
        with sockets.create_connection(("127.0.0.1", host_port), timeout=5) as conn:
            conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
        if b"through-the-host-port" in answer:
            break
    except OSError:
        pass
    assert time.time() < deadline, "the host port never answered"
    time.sleep(0.2)
runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=served), timeout=30)
try:
    sockets.create_connection(("127.0.0.1", host_port), timeout=2).close()
    sys.exit("the host port stayed open after the sandbox went")
except OSError:
    pass
for name, linux, words in [
    ("not-namespaced", {"sysctls": {"kernel.panic": "1"}}, "not namespaced"),
    ("bad-ipc-value", {"sysctls": {"kernel.shmmax": "lots"}}, "kernel.shmmax"),
    ("ipc-out-of-range", {"sysctls": {"kernel.msgmni": "40000"}}, "out of range"),
    ("mqueue", {"sysctls": {"fs.mqueue.msg_max": "100"}}, "POSIX message queues"),
    ("host-network", {"security_context": cri.LinuxSandboxSecurityContext(
        namespace_options=cri.NamespaceOption(network=cri.NODE))}, "hostNetwork"),
]:
    try:
        sandbox(name, **linux)
        sys.exit(f"{name} was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and words in e.details(), e
        print(f"{name}:", e.details())
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
