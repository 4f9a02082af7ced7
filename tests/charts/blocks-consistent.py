"""Whether the processing blocks in a release's configuration database and what runs for them in the processing
namespace agree, as they must after any fault. Prints `consistent: ...` and exits 0, or prints each disagreement
and exits 1. Used by scripts/test-real-node, which calls it until it says consistent or time runs out.

    blocks-consistent.py ETCD_URL PROCESSING_NAMESPACE SNAPSHOT WORKERS RELEASE_NAMESPACE

- every /deploy entry is a Helm release in the namespace, deployed, and every release there has its entry
  (no duplicate, no leftover);
- every pod there belongs to one of those releases, is Running and Ready, and each block has one script pod,
  one Dask scheduler and WORKERS Dask workers;
- each block is owned by its script's current pod and its state says executing with WORKERS Dask workers;
- every pod of the platform's release (RELEASE_NAMESPACE) is back, Running and Ready;
- nothing of /pb is lost: the blocks' definitions equal SNAPSHOT (written on the first call)."""
import base64
import json
import os
import subprocess
import sys

etcd, namespace, snapshot, workers, release_namespace = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]


def run(*command):
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout or "null")


def etcd_entries():
    out = run("etcdctl", "--endpoints", etcd, "--command-timeout=5s", "get", "--prefix", "", "-w", "json")
    decode = base64.b64decode
    # Keys are stored depth-tagged (`2/pb/<id>` for /pb/<id>): the paths without the tag.
    return {"/" + decode(kv["key"]).decode().split("/", 1)[1]: decode(kv["value"]).decode() for kv in out.get("kvs", [])}


try:
    entries = etcd_entries()
    releases = run("helm", "list", "-n", namespace, "--deployed", "--failed", "--pending", "--uninstalling", "-o", "json") or []
    pods = run("kubectl", "get", "pods", "-n", namespace, "-o", "json")["items"]
    daemons = run("kubectl", "get", "pods", "-n", release_namespace, "-o", "json")["items"]
except (subprocess.CalledProcessError, json.JSONDecodeError) as e:
    print(f"cannot read the database or the cluster yet: {e} {getattr(e, 'stderr', '')}".strip())
    sys.exit(1)

problems = []
blocks = sorted(k.split("/")[2] for k in entries if k.count("/") == 2 and k.startswith("/pb/"))
definitions = {k: v for k, v in entries.items() if k.count("/") == 2 and k.startswith("/pb/")}
if not os.path.exists(snapshot):
    with open(snapshot, "w") as f:
        json.dump(definitions, f)
with open(snapshot) as f:
    kept = json.load(f)
for key in sorted(set(kept) | set(definitions)):
    if kept.get(key) != definitions.get(key):
        problems.append(f"{key} changed: {kept.get(key)!r} -> {definitions.get(key)!r}")

deployments = sorted(k.split("/")[2] for k in entries if k.count("/") == 2 and k.startswith("/deploy/"))
release_status = {}
for release in releases:
    if release["name"] in release_status:
        problems.append(f"release {release['name']} listed twice")
    release_status[release["name"]] = release["status"]
for deploy_id in deployments:
    if deploy_id not in release_status:
        problems.append(f"/deploy/{deploy_id} has no Helm release")
    elif release_status[deploy_id] != "deployed":
        problems.append(f"release {deploy_id} is {release_status[deploy_id]}")
for name in sorted(set(release_status) - set(deployments)):
    problems.append(f"release {name} ({release_status[name]}) has no /deploy entry: left behind")

def ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


for pod in daemons:
    if pod["metadata"].get("deletionTimestamp") or not ready(pod):
        problems.append(f"the platform's pod {pod['metadata']['name']} is not back yet")

pods_of = {}
for pod in pods:
    name = pod["metadata"]["name"]
    owner = next((r for r in sorted(deployments, key=len, reverse=True) if name.startswith(r + "-")), None)
    if owner is None:
        problems.append(f"pod {name} belongs to no deployment: orphaned")
    elif pod["metadata"].get("deletionTimestamp"):
        problems.append(f"pod {name} is still terminating")
    elif pod["status"].get("phase") != "Running" or not ready(pod):
        problems.append(f"pod {name} is {pod['status'].get('phase')}, not Ready")
    else:
        pods_of.setdefault(owner, []).append(name)

for pb in blocks:
    state = json.loads(entries.get(f"/pb/{pb}/state", "{}"))
    owner = json.loads(entries.get(f"/pb/{pb}/owner", "{}")).get("hostname")
    script_pods = pods_of.get(f"{pb}-workflow", [])
    dask_pods = pods_of.get(f"{pb}-dask", [])
    schedulers = [p for p in dask_pods if p.startswith(f"{pb}-dask-scheduler-")]
    if len(script_pods) != 1:
        problems.append(f"{pb}: {len(script_pods)} script pods {script_pods}")
    elif owner != script_pods[0]:
        problems.append(f"{pb}: owned by {owner!r}, not by its script's pod {script_pods[0]}")
    if (len(schedulers), len(dask_pods) - len(schedulers)) != (1, workers):
        problems.append(f"{pb}: Dask pods {sorted(dask_pods)}, expected a scheduler and {workers} worker(s)")
    if state.get("state") != "executing":
        problems.append(f"{pb}: state {state.get('state')!r} ({state.get('error')})")
    if (state.get("dask") or {}).get("workers") != workers:
        problems.append(f"{pb}: state's Dask workers {(state.get('dask') or {}).get('workers')!r}, expected {workers}")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"consistent: {len(blocks)} block(s), {len(deployments)} release(s), {len(pods)} pod(s), {len(daemons)} of the platform")
