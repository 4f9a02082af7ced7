"""Change events from one PyTango client's request to its own subscriber's callback, for each device: latency
p50/p99, one request at a time, sent back to back (each as soon as the last is answered and its event received) and
for the scan commands also paced at fixed rates (a request every millisecond, then every third); and events per
second. The devices take turns, in interleaved rounds. The Rust subarray is first brought to READY (ONLINE,
AssignResources, Configure), and its receive script left to start.
    tango_events.py SECONDS ROUNDS"""
import statistics
import sys
import threading
import time

import tango
from tango import EventType

CONFIGURE = ('{ "configure": { "id": "bench-pb", "sbiId": "bench-sbi", "workflow": { "type": "realtime", '
             '"version": "0.1.0", "id": "vis_receive" }, "parameters": {}, "scanParameters": { "1": {} } } }')


class Arrivals:
    """Counts the value events of one subscription, with the time of the last one."""

    def __init__(self):
        self.count, self.last, self.cond = 0, 0.0, threading.Condition()

    def push_event(self, e):
        now = time.perf_counter()
        if e.err:
            return
        with self.cond:
            self.count += 1
            self.last = now
            self.cond.notify_all()

    def wait_beyond(self, count, timeout=5):
        with self.cond:
            if not self.cond.wait_for(lambda: self.count > count, timeout):
                raise SystemExit(f"no event within {timeout} s (received {self.count}, waited for more than {count})")
            return self.last


def latencies(arrivals, requests, n, rate=None):
    """Milliseconds from sending each request to its event's callback, one request at a time: back to back, or
    with `rate`, each sent at its due time (`rate` a second) once the last one's event has arrived."""
    out = []
    began = time.perf_counter()
    for i in range(n):
        if rate:
            while (early := began + i / rate - time.perf_counter()) > 0:
                time.sleep(early)
        before = arrivals.count
        start = time.perf_counter()
        requests[i % len(requests)]()
        out.append((arrivals.wait_beyond(before) - start) * 1000)
    return out


def events_per_second(arrivals, requests, seconds):
    """Events received per second while the requests are sent back to back for `seconds`, and how many of the
    requests' events never arrived."""
    before, n, start = arrivals.count, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        requests[n % len(requests)]()
        n += 1
    with arrivals.cond:
        arrivals.cond.wait_for(lambda: arrivals.count >= before + n, 5)
        received = arrivals.count - before
        return received / (arrivals.last - start), n - received


def prepare(name):
    """The device's proxy and its two subscriptions, each with the requests whose events it receives."""
    d = tango.DeviceProxy(name)
    if name.startswith("mid_sdp"):
        d.adminMode = "ONLINE"
        d.AssignResources("")
        d.Configure(CONFIGURE)
        # The receive script the configuration starts publishes its addresses once it runs: measured after that,
        # its start (a process, its claim, its watch) is not inside the figures.
        deadline = time.monotonic() + 30
        while d.receiveAddresses in ("", "{}"):
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: no receive addresses 30 s after Configure")
            time.sleep(0.1)
    admin, obs = Arrivals(), Arrivals()
    d.subscribe_event("adminMode", EventType.CHANGE_EVENT, admin)
    d.subscribe_event("obsState", EventType.CHANGE_EVENT, obs)
    admin.wait_beyond(0)
    obs.wait_beyond(0)
    return {
        "adminMode write": (admin, [lambda: d.write_attribute("adminMode", 2), lambda: d.write_attribute("adminMode", 1)]),
        "StartScan/EndScan": (obs, [lambda: d.command_inout("StartScan"), lambda: d.command_inout("EndScan")]),
    }


# Per figure and device 5,000 requests, taken in interleaved rounds (the devices in turn, which one goes first
# alternating), so that a neighbour's burst or a drift of the machine falls on both; the p99 of 5,000 pooled is
# the fiftieth slowest. Each round sends an even number, leaving every device in the state it began in.
seconds, rounds, samples = float(sys.argv[1]), int(sys.argv[2]), 5000
per_round = samples // rounds // 2 * 2
devices = {"Rust (rstango)": "mid_sdp/elt/subarray_1", "PyTango": "bench/py/subarray_1"}
subjects = {label: prepare(name) for label, name in devices.items()}
figures = {label: {} for label in devices}
for kind, paces in (("adminMode write", [None]), ("StartScan/EndScan", [None, 1000, 3000])):
    for pace in paces:
        how = f"at {pace:,}/s" if pace else "back to back"
        print(f"{kind} {how}: {rounds} rounds of {per_round} requests a device", file=sys.stderr)
        pooled = {label: [] for label in devices}
        for r in range(rounds):
            for label in list(devices)[:: 1 if r % 2 == 0 else -1]:
                arrivals, requests = subjects[label][kind]
                pooled[label] += latencies(arrivals, requests, per_round, pace)
        for label, ms in pooled.items():
            q = statistics.quantiles(ms, n=100)
            figures[label][f"{kind} -> event {how}, p50/p99 ms"] = f"{q[49]:.2f} / {q[98]:.2f}"
    for label in devices:
        rate, lost = events_per_second(*subjects[label][kind], seconds)
        figures[label][f"{kind}: events/s back to back (lost)"] = f"{rate:.0f} ({lost})"
print(f"change events, {rounds} interleaved rounds, {per_round * rounds:,} requests a device per latency figure")
rows = list(next(iter(figures.values())))
print(f"{'':52}" + "".join(f"{label:>18}" for label in devices))
for row in rows:
    print(f"{row:52}" + "".join(f"{figures[label][row]:>18}" for label in devices))
