"""Every change of a burst reaches a PyTango subscriber of our Rust devices, in order.

Subscribes to the change events of subarray_1's adminMode and obsState, waits for the first of each (the current
values), prints "subscribed", then reads from stdin how many changes the test made of each: adminMode alternates
OFFLINE (0) and ONLINE (1) from ONLINE, obsState SCANNING (3) and READY (2) from READY. Each subscriber must
receive exactly those values, in order, and nothing after them.
"""
import sys
import threading
import time

from tango import DeviceProxy, EventType


class Received:
    def __init__(self):
        self.values, self.cond = [], threading.Condition()

    def push_event(self, e):
        with self.cond:
            self.values.append(e.errors[0].reason if e.err else int(e.attr_value.value))
            self.cond.notify_all()

    def wait_for_count(self, count, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.values) >= count, timeout)


def fail(message):
    print(f"FAIL {message}", flush=True)
    sys.exit(1)


d = DeviceProxy("mid_sdp/elt/subarray_1")
subscribers = {"adminMode": Received(), "obsState": Received()}
for attribute, received in subscribers.items():
    d.subscribe_event(attribute, EventType.CHANGE_EVENT, received.push_event)
    if not received.wait_for_count(1, 10):
        fail(f"no first {attribute} event within 10 s")
print("subscribed", flush=True)
admin_changes, obs_changes = (int(n) for n in sys.stdin.readline().split())

expected = {
    "adminMode": [1] + [0 if i % 2 == 0 else 1 for i in range(admin_changes)],
    "obsState": [2] + [3 if i % 2 == 0 else 2 for i in range(obs_changes)],
}
for attribute, received in subscribers.items():
    want = expected[attribute]
    started = time.monotonic()
    received.wait_for_count(len(want), 60)
    elapsed = time.monotonic() - started
    time.sleep(0.5)  # an extra event would arrive about now
    with received.cond:
        got = list(received.values)
    if got != want:
        where = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        fail(f"{attribute}: {len(got)} events for {len(want)} expected; first difference at {where}: "
             f"got {got[where:where + 5]}, expected {want[where:where + 5]}")
    print(f"{attribute}: {len(want) - 1} changes received in order, none lost ({elapsed:.2f} s after the last)",
          flush=True)
print("burst ok", flush=True)
