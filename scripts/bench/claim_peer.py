"""The original platform's way of claiming a processing block, as a benchmark peer of `sdp script`: a Python
process on etcd3-py (the seed-era ska-sdp-config's client) that grants a lease, writes the block's owner entry on
it (the same key and JSON) and keeps the lease alive until SIGTERM.

Usage: claim_peer.py <port> <pb_id>"""
import json
import os
import signal
import socket
import sys
import time

import etcd3

port, pb_id = int(sys.argv[1]), sys.argv[2]
client = etcd3.Client(host="127.0.0.1", port=port, protocol="http")
lease = client.Lease(ttl=10)
lease.grant()
owner = {"command": sys.argv, "hostname": socket.gethostname(), "pid": os.getpid()}
# Stored keys carry their depth: /pb/<id>/owner has three slashes.
client.put(f"3/pb/{pb_id}/owner", json.dumps(owner), lease=lease.ID)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(3)
    lease.refresh()
