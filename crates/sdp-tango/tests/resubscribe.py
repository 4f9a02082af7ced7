"""A PyTango subscriber of our Rust devices keeps its subscription across a restart of the device server.

Prints "subscribed" once subscribed, then waits for a line on stdin telling that the servers restarted. cppTango
notices the missing heartbeat and subscribes again; the events pushed after that must arrive.
"""
import sys
import threading
import time

from tango import DeviceProxy, EventType

received, cond = [], threading.Condition()


def push_event(e):
    with cond:
        received.append(e.errors[0].reason if e.err else int(e.attr_value.value))
        cond.notify_all()


def wait_for(value, since, timeout):
    with cond:
        if not cond.wait_for(lambda: value in received[since:], timeout):
            print(f"FAIL no event {value} within {timeout} s; received {received}")
            sys.exit(1)


d = DeviceProxy("mid_sdp/elt/subarray_1")
d.subscribe_event("adminMode", EventType.CHANGE_EVENT, push_event)
wait_for(0, 0, 10)
print("subscribed", flush=True)
sys.stdin.readline()

# The first event after the restart may be the value read when cppTango subscribes again, which takes up to a
# few heartbeat periods; the next one can only come through the renewed subscription.
since = len(received)
started = time.monotonic()
d.adminMode = "ONLINE"
wait_for(1, since, 90)
print(f"subscribed again after {time.monotonic() - started:.0f} s")
# That value may be the read cppTango makes when it subscribes again, while its ZeroMQ socket still connects:
# an event published before the connection completes is not delivered (ZeroMQ's "slow joiner"). Let it connect.
time.sleep(2)
since = len(received)
d.adminMode = "OFFLINE"
wait_for(0, since, 10)
print(f"events after the restart: {received}")
print("resubscribe ok")
