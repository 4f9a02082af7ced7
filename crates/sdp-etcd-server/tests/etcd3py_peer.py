"""etcd3-py, the JSON-gateway client of the original ska-sdp-config, against one server (real etcd or the
embedded one): put, get, range, txn, lease, watch. Run with the server's port as the argument; prints one line
per step, exits non-zero on the first failure, and "etcd3-py ok" at the end."""
import sys
import threading
import time

import etcd3


def check(what, got, expected):
    if got != expected:
        print(f"FAIL {what}: got {got!r}, expected {expected!r}")
        sys.exit(1)
    print(f"ok {what}")


client = etcd3.Client(host="127.0.0.1", port=int(sys.argv[1]), protocol="http")
check("API prefix from /version", client.api_prefix, "/v3")

client.put("/peer/a", "1")
client.put("/peer/b", "2")
check("get", client.range("/peer/a").kvs[0].value, b"1")
check("range by prefix", [kv.key for kv in client.range("/peer/", prefix=True).kvs], [b"/peer/a", b"/peer/b"])
check("count", client.range("/peer/", prefix=True, count_only=True).count, 2)
check("missing key", client.range("/peer/none").kvs, None)

# A transaction as the original's backend writes them: compare the mod revision, then put.
rev = client.range("/peer/a").kvs[0].mod_revision
txn = client.Txn()
txn.compare(txn.key("/peer/a").mod == rev)
txn.success(txn.put("/peer/a", "3"))
txn.failure(txn.range("/peer/a"))
check("txn succeeded", txn.commit().succeeded, True)
txn = client.Txn()
txn.compare(txn.key("/peer/a").mod == rev)
txn.success(txn.put("/peer/a", "4"))
txn.failure(txn.range("/peer/a"))
failed = txn.commit()
check("txn on a stale revision fails", bool(failed.succeeded), False)
check("failure branch read", failed.responses[0].response_range.kvs[0].value, b"3")

lease = client.Lease(ttl=30)
lease.grant()
client.put("/peer/leased", "x", lease=lease.ID)
check("lease keys", client.lease_time_to_live(lease.ID, keys=True).keys, [b"/peer/leased"])
check("keep-alive", client.lease_keep_alive_once(lease.ID).TTL, 30)
lease.revoke()
check("revoked lease's key gone", client.range("/peer/leased").kvs, None)

events = []
watcher = client.Watcher(key="/peer/w", prev_kv=True)
got_two = threading.Event()


def on_event(event):
    events.append((event.type, event.key, event.value))
    if len(events) == 2:
        got_two.set()


watcher.onEvent(on_event)
watcher.runDaemon()
time.sleep(0.5)
client.put("/peer/w", "v")
client.delete_range("/peer/w")
check("watch events", got_two.wait(10), True)
watcher.stop()
check("watched", [(t, k) for t, k, _ in events], [(etcd3.EventType.PUT, b"/peer/w"), (etcd3.EventType.DELETE, b"/peer/w")])
client.delete_range("/peer/", prefix=True)
print("etcd3-py ok")
