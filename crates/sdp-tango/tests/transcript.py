"""The seed's itango session against our Rust device servers, with a real PyTango client.

Run with TANGO_HOST set to the Tango database the servers are registered in, SDP_LMC_URL to the devices' HTTP
surface and ETCDCTL_ENDPOINTS to the configuration database. Every step is asserted; the script prints one
line per step and exits non-zero on the first difference.

Change and archive events are followed from the start: the session's commands, a command through the HTTP
surface and receive addresses written into the configuration database by another process (etcdctl) must
all reach the subscribers, each change once.
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import tango
from tango import DevFailed, DeviceProxy, DevState, EventType

CONFIGURE = ('{ "configure": { "id": "xyz", "sbiId": "xyz", "workflow": { "type": "realtime", '
             '"version": "0.1.0", "id": "vis_receive" }, "parameters": {}, "scanParameters": { "1": {} } } }')


def check(what, got, expected):
    if got != expected:
        print(f"FAIL {what}: got {got!r}, expected {expected!r}")
        sys.exit(1)
    print(f"ok {what}: {got!r}")


def refused(what, call, reason, desc_part):
    try:
        call()
    except DevFailed as e:
        check(f"{what} reason", e.args[0].reason, reason)
        if desc_part not in e.args[0].desc:
            print(f"FAIL {what}: {desc_part!r} not in {e.args[0].desc!r}")
            sys.exit(1)
        print(f"ok {what}: refused")
        return
    print(f"FAIL {what}: not refused")
    sys.exit(1)


db = tango.Database()
exported = list(db.get_device_exported("*"))
for name in ("mid_sdp/elt/master", "mid_sdp/elt/subarray_1"):
    check(f"{name} exported", name in exported, True)
check("servers", sorted(s for s in db.get_server_list() if s.startswith("SDP")), ["SDPMaster/1", "SDPSubarray/1"])

class Received:
    """The values of the events of one subscription, in arrival order (errors as their reason)."""

    def __init__(self, convert):
        self.convert, self.values, self.cond = convert, [], threading.Condition()

    def push_event(self, e):
        with self.cond:
            self.values.append(e.errors[0].reason if e.err else self.convert(e.attr_value.value))
            self.cond.notify_all()

    def wait_for(self, what, expected, timeout=10):
        """The values received must become `expected` (a prefix is waited for; more is a failure)."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.values) >= len(expected), timeout)
        time.sleep(0.3)  # an extra, wrong event would arrive about now
        check(what, self.values, expected)


def subscribe(device, attribute, kind, convert):
    received = Received(convert)
    device.subscribe_event(attribute, kind, received)
    return received


d = DeviceProxy("mid_sdp/elt/subarray_1")
obs_changes = subscribe(d, "obsState", EventType.CHANGE_EVENT, int)
obs_archive = subscribe(d, "obsState", EventType.ARCHIVE_EVENT, int)
state_changes = subscribe(d, "State", EventType.CHANGE_EVENT, str)
admin_changes = subscribe(d, "adminMode", EventType.CHANGE_EVENT, int)
addresses_changes = subscribe(d, "receiveAddresses", EventType.CHANGE_EVENT, json.loads)

# In [3]: d.obsState
check("obsState", repr(d.obsState), "<obsState.IDLE: 0>")
# In [4]: d.state()
check("state", d.state(), DevState.OFF)
refused("AssignResources while OFFLINE", lambda: d.AssignResources(""), "API_CommandNotAllowed",
        "Current mode: <AdminMode.OFFLINE: 0>")
# In [5]: d.adminMode = 'ONLINE'
d.adminMode = "ONLINE"
check("adminMode", repr(d.adminMode), "<adminMode.ONLINE: 1>")
# In [6]: d.AssignResources('')
d.AssignResources("")
check("state after AssignResources", d.state(), DevState.ON)
check("obsState after AssignResources", repr(d.obsState), "<obsState.IDLE: 0>")
refused("Configure with a bad argument", lambda: d.Configure('{"configure": {"id": "xyz"}}'), "Command failed",
        "configure: 'sbiId' is a required property")
check("obsState after a refused Configure", repr(d.obsState), "<obsState.IDLE: 0>")
# In [9]: d.Configure(...)
d.Configure(CONFIGURE)
check("obsState after Configure", repr(d.obsState), "<obsState.READY: 2>")
# In [11]: d.StartScan()
d.StartScan()
check("obsState after StartScan", repr(d.obsState), "<obsState.SCANNING: 3>")
refused("StartScan while SCANNING", lambda: d.StartScan(), "API_CommandNotAllowed",
        "Error: the device must be in one of the following obsStates: [<ObsState.READY: 2>]")
# In [13]: d.EndScan()
d.EndScan()
check("obsState after EndScan", repr(d.obsState), "<obsState.READY: 2>")
check("healthState", repr(d.healthState), "<healthState.OK: 0>")
check("receiveAddresses", json.loads(d.receiveAddresses), {})


# Receive addresses written into the configuration database by another process reach the subscribers.
# Keys are stored depth-tagged: the number of "/" in the path, then the path.
pb_state_key = "3/pb/xyz/state"
etcdctl = ["etcdctl"]  # reaches ETCDCTL_ENDPOINTS
env = dict(os.environ, ETCDCTL_API="3")


def run_etcdctl(*args):
    done = subprocess.run(etcdctl + list(args), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"FAIL etcdctl {' '.join(args)}: {done.stderr}")
        sys.exit(1)
    return done.stdout


def etcd_get(key):
    out = run_etcdctl("get", "--print-value-only", key)
    return json.loads(out) if out.strip() else None


# The session's Configure made its processing block.
check("processing block's workflow", etcd_get("2/pb/xyz")["workflow"], {"type": "realtime", "id": "vis_receive", "version": "0.1.0"})
pb_state = etcd_get(pb_state_key) or {}
addresses = {"1": {"host": [[0, "192.168.0.1"]], "port": [[0, 9000, 1]]}}
pb_state["receiveAddresses"] = addresses
run_etcdctl("put", pb_state_key, json.dumps(pb_state))
addresses_changes.wait_for("receiveAddresses events after etcdctl put", [{}, addresses])
check("receiveAddresses read", json.loads(d.receiveAddresses), addresses)

# Commands through the HTTP surface (sdp lmc) reach the Tango subscribers too.
def http_command(name):
    request = urllib.request.Request(f"{os.environ['SDP_LMC_URL']}/api/devices/subarray_1/commands/{name}",
                                     data=b"", method="POST")
    with urllib.request.urlopen(request) as response:
        check(f"HTTP {name}", response.status, 204)


http_command("EndSB")
http_command("ReleaseResources")
obs_changes.wait_for("obsState change events", [0, 1, 0, 1, 2, 3, 2, 0])
obs_archive.wait_for("obsState archive events", [0, 1, 0, 1, 2, 3, 2, 0])
state_changes.wait_for("State change events", ["OFF", "ON", "OFF"])
admin_changes.wait_for("adminMode change events", [0, 1])
addresses_changes.wait_for("receiveAddresses events after EndSB", [{}, addresses, {}])

m = DeviceProxy("mid_sdp/elt/master")
master_states = subscribe(m, "State", EventType.CHANGE_EVENT, str)
operating_states = subscribe(m, "OperatingState", EventType.ARCHIVE_EVENT, int)
check("master state", m.state(), DevState.ON)
m.Standby()
check("master state after Standby", m.state(), DevState.STANDBY)
check("master OperatingState", repr(m.OperatingState), "<OperatingState.STANDBY: 3>")
m.On()
check("master state after On", m.state(), DevState.ON)
master_states.wait_for("master State change events", ["ON", "STANDBY", "ON"])
operating_states.wait_for("master OperatingState archive events", [1, 3, 1])
print("transcript ok")
