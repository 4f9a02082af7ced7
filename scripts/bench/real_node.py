"""The seed's demo timed on the real node (scripts/bench-real-node sets it up): `sdpcfg process
realtime:testdask:0.1.0` on the host, to the block's owner entry (the script's pod claimed it) and to its Dask
scheduler and 2 workers Ready; one block at a time, then BLOCKS blocks at once; and the memory of each pod, from its
cgroup.

    real_node.py SDPCFG ETCD_HOST:PORT PROCESSING_NAMESPACE RELEASE_NAMESPACE BLOCKS"""
import base64
import glob
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

sdpcfg, etcd, processing, release, blocks = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
host, port = etcd.rsplit(":", 1)
env = dict(os.environ, SDP_CONFIG_HOST=host, SDP_CONFIG_PORT=port)


def process():
    out = subprocess.run([sdpcfg, "process", "realtime:testdask:0.1.0"], env=env, check=True, capture_output=True,
                         text=True).stdout
    return out.strip().removeprefix("OK, pb_id = ")


def delete(pb):
    subprocess.run([sdpcfg, "delete", "-R", f"/pb/{pb}"], env=env, check=True, capture_output=True)


def owned(pb):
    """Whether /pb/<pb>/owner exists (keys are depth-tagged: 3/pb/<id>/owner), through etcd's JSON gateway."""
    key = base64.b64encode(f"3/pb/{pb}/owner".encode()).decode()
    request = urllib.request.Request(f"http://{etcd}/v3/kv/range", data=json.dumps({"key": key}).encode())
    with urllib.request.urlopen(request, timeout=5) as answer:
        return int(json.load(answer).get("count", 0)) > 0


def pods(namespace):
    out = subprocess.run(["kubectl", "get", "pods", "-n", namespace, "-o", "json"], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)["items"]


def ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def dask_ready(pb, items):
    ready_pods = [p["metadata"]["name"] for p in items if ready(p) and not p["metadata"].get("deletionTimestamp")]
    return (sum(n.startswith(f"{pb}-dask-scheduler-") for n in ready_pods) == 1
            and sum(n.startswith(f"{pb}-dask-worker-") for n in ready_pods) == 2)


def wait(what, test, timeout=300, every=0.1):
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not after {timeout} s")
        time.sleep(every)
    return time.monotonic()


def gone(pbs):
    names = [p["metadata"]["name"] for p in pods(processing)]
    return not any(n.startswith(f"{pb}-") for n in names for pb in pbs)


def memory(pod):
    """MiB charged to the pod's cgroup and resident in its processes (v1 or v2), or None off this machine."""
    uid = pod["metadata"]["uid"]
    for root in ("/sys/fs/cgroup/memory/kubepods", "/sys/fs/cgroup/kubepods"):
        for d in glob.glob(f"{root}/**/pod{uid}", recursive=True) + glob.glob(f"{root}/**/pod{uid.replace('-', '_')}",
                                                                             recursive=True):
            usage = next(open(f"{d}/{f}").read() for f in ("memory.usage_in_bytes", "memory.current")
                         if os.path.exists(f"{d}/{f}"))
            rss = 0
            for procs in glob.glob(f"{d}/**/cgroup.procs", recursive=True):
                for pid in set(open(procs).read().split()):
                    try:
                        rss += next(int(line.split()[1]) for line in open(f"/proc/{pid}/status")
                                    if line.startswith("VmRSS:"))
                    except (OSError, StopIteration):
                        pass
            return int(usage) / 2**20, rss / 1024
    return None


def role(pod, pbs):
    """What a pod is: a block's script, scheduler or worker, else the platform's workload it belongs to."""
    name = pod["metadata"]["name"]
    for suffix, what in (("-workflow-", "script pod"), ("-dask-scheduler-", "Dask scheduler"), ("-dask-worker-", "Dask worker")):
        if any(name.startswith(pb + suffix) for pb in pbs):
            return what
    owner = (pod["metadata"].get("ownerReferences") or [{"kind": "", "name": name}])[0]
    return owner["name"].rsplit("-", 1)[0] if owner["kind"] == "ReplicaSet" else owner["name"]


def figures(label, seconds):
    return f"{label}: p50 {statistics.median(seconds):.1f} s, max {max(seconds):.1f} s"


# One block at a time.
to_owner, to_ready = [], []
for i in range(blocks):
    start = time.monotonic()
    pb = process()
    to_owner.append(wait(f"{pb} owned", lambda: owned(pb), every=0.05) - start)
    to_ready.append(wait(f"{pb}'s Dask Ready", lambda: dask_ready(pb, pods(processing))) - start)
    print(f"  block {i + 1}/{blocks} {pb}: owner {to_owner[-1]:.2f} s, Dask Ready {to_ready[-1]:.1f} s", file=sys.stderr)
    delete(pb)
    wait(f"{pb}'s pods gone", lambda: gone([pb]), every=0.5)
print(f"one block at a time, {blocks} blocks (sdpcfg process on the host, through etcd's NodePort):")
print("  " + figures("sdpcfg process -> owner entry (the script's pod claimed it)", to_owner))
print("  " + figures("sdpcfg process -> Dask scheduler and 2 workers Ready", to_ready))

# All at once.
start = time.monotonic()
pbs = [process() for _ in range(blocks)]
created = time.monotonic() - start
claimed = wait("every block owned", lambda: all(owned(pb) for pb in pbs), every=0.1) - start
print(f"{blocks} blocks at once (created in {created:.2f} s):", file=sys.stderr)
all_ready = wait("every block's Dask Ready", lambda: all(dask_ready(pb, items) for items in [pods(processing)] for pb in pbs),
                 timeout=900, every=0.5) - start
print(f"{blocks} blocks created at once ({created:.2f} s to create them):")
print(f"  every block claimed by its script's pod: {claimed:.1f} s")
print(f"  every Dask pod Ready ({3 * blocks} pods): {all_ready:.1f} s")

# Memory, while the blocks run.
by_role = {}
for pod in pods(processing) + pods(release):
    mib = memory(pod)
    if mib:
        by_role.setdefault(role(pod, pbs), []).append(mib)
print("memory per pod (cgroup charged / processes resident, MiB; median over the pods of each kind):")
for name in sorted(by_role):
    values = by_role[name]
    print(f"  {name:<34} {statistics.median(v[0] for v in values):7.1f} / {statistics.median(v[1] for v in values):6.1f}"
          f"   ({len(values)} pod(s))")
for pb in pbs:
    delete(pb)
wait("every block's pods gone", lambda: gone(pbs), timeout=300, every=1)
