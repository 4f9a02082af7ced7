"""The seed's itango session (sdp-prototype-helm-deployment.txt), as a PyTango client outside the cluster: it finds
the SDP devices in the Tango database of TANGO_HOST, drives subarray SUBARRAY (default mid_sdp/elt/subarray_1)
through its observing states with a vis_receive configuration of processing block PB_ID, and checks the change
events of obsState and receiveAddresses on the way. Ends in READY (as the seed's session does) and prints the
receive addresses, one `host port` per line, after a line `receive addresses:`. Exits 1 naming the first step
that did not go as the seed's session shows."""
import json
import os
import sys
import threading
import time

import tango
from tango import EventType

SUBARRAY = os.environ.get("SUBARRAY", "mid_sdp/elt/subarray_1")
PB_ID = os.environ.get("PB_ID", "itango-session")
CONFIGURE = json.dumps({"configure": {
    "id": PB_ID, "sbiId": PB_ID, "workflow": {"type": "realtime", "version": "0.1.0", "id": "vis_receive"},
    "parameters": {}, "scanParameters": {"1": {}}}})


class Changes:
    """The values of one attribute's change events, in the order they arrived."""

    def __init__(self):
        self.values, self.cond = [], threading.Condition()

    def push_event(self, e):
        if e.err:
            return
        with self.cond:
            self.values.append(e.attr_value.value)
            self.cond.notify_all()

    def wait_for_sequence(self, what, sequence, timeout):
        """Waits until `sequence` arrived in this order (other values may come between)."""
        def arrived():
            rest = iter(self.values)
            return all(any(v == want for v in rest) for want in sequence)
        with self.cond:
            if not self.cond.wait_for(arrived, timeout):
                fail(f"no {what} events within {timeout} s (got {self.values})")
        print(f"ok   {what} change events: {self.values}")

    def wait_for(self, what, test, timeout):
        with self.cond:
            if not self.cond.wait_for(lambda: any(test(v) for v in self.values), timeout):
                fail(f"no {what} event within {timeout} s (got {self.values})")
            return next(v for v in self.values if test(v))


def fail(why):
    print(f"FAIL {why}", file=sys.stderr)
    sys.exit(1)


def expect(what, got, want):
    if got != want:
        fail(f"{what}: {got!r}, expected {want!r}")
    print(f"ok   {what}: {got!r}")


def addresses(value):
    """`host port` for each receive address of each scan type in a receiveAddresses value."""
    for scan in json.loads(value or "{}").values():
        hosts = dict(scan["host"])
        for first, port, count in scan["port"]:
            for i in range(count):
                yield hosts[max(h for h in hosts if h <= first + i)], port + i


def main():
    db = tango.Database()
    deadline = time.monotonic() + 120
    while SUBARRAY not in db.get_device_exported("*"):
        if time.monotonic() > deadline:
            fail(f"{SUBARRAY} not exported in {os.environ.get('TANGO_HOST')} after 120 s")
        time.sleep(1)
    # In [1]: lsdev
    exported = set(db.get_device_exported("*"))
    for device in ("mid_sdp/elt/master", SUBARRAY):
        expect(f"lsdev lists {device}", device in exported, True)
    master = tango.DeviceProxy("mid_sdp/elt/master")
    print(f"ok   {master.name()} answers: {master.state()}")

    d = tango.DeviceProxy(SUBARRAY)
    obs, receive = Changes(), Changes()
    d.subscribe_event("obsState", EventType.CHANGE_EVENT, obs)
    d.subscribe_event("receiveAddresses", EventType.CHANGE_EVENT, receive)
    obs.wait_for("first obsState", lambda v: True, 10)
    expect("obsState", d.obsState.name, "IDLE")
    expect("state()", d.state(), tango.DevState.OFF)
    d.adminMode = "ONLINE"
    d.AssignResources("")
    expect("state() after AssignResources", d.state(), tango.DevState.ON)
    expect("obsState after AssignResources", d.obsState.name, "IDLE")
    d.Configure(CONFIGURE)
    expect("obsState after Configure", d.obsState.name, "READY")
    value = receive.wait_for("receiveAddresses with addresses", lambda v: bool(list(addresses(v))), 180)
    print("ok   receiveAddresses change event with addresses")
    d.StartScan()
    expect("obsState after StartScan", d.obsState.name, "SCANNING")
    d.EndScan()
    expect("obsState after EndScan", d.obsState.name, "READY")
    # IDLE, READY, SCANNING, READY (CONFIGURING may come between).
    obs.wait_for_sequence("obsState", [0, 1, 2, 3, 2], 10)
    print("receive addresses:")
    for host, port in addresses(value):
        print(host, port)


if __name__ == "__main__":
    main()
