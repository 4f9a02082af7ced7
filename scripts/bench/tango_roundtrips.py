"""Round trips per second from one PyTango client: read_attribute('obsState') and command_inout('State')."""
import sys
import time

import tango


def rate(call, seconds):
    call()  # connect and warm up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        n += 1
    return n / (time.perf_counter() - start)


seconds = float(sys.argv[1])
devices = {"Rust (rstango)": "mid_sdp/elt/subarray_1", "PyTango": "bench/py/subarray_1"}
rows = {"read_attribute obsState /s": lambda d: lambda: d.read_attribute("obsState"),
        "command_inout State /s": lambda d: lambda: d.command_inout("State")}
results = {}
for label, name in devices.items():
    d = tango.DeviceProxy(name)
    results[label] = {row: rate(make(d), seconds) for row, make in rows.items()}
print(f"{'':32}" + "".join(f"{label:>18}" for label in devices))
for row in rows:
    print(f"{row:32}" + "".join(f"{results[label][row]:>18.0f}" for label in devices))
