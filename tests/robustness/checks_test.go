package main

import (
	"strings"
	"testing"
	"time"
)

func hasViolation(t *testing.T, vs []Violation, kind, text string) {
	t.Helper()
	for _, v := range vs {
		if v.Kind == kind && strings.Contains(v.Detail, text) {
			return
		}
	}
	t.Fatalf("no %s violation saying %q in %v", kind, text, vs)
}

func noViolation(t *testing.T, vs []Violation) {
	t.Helper()
	if len(vs) != 0 {
		t.Fatalf("violations: %v", vs)
	}
}

func putEvent(key, value string, rev, create, version int64) Event {
	return Event{Rev: rev, Key: key, Value: value, ModRev: rev, CreateRev: create, Version: version}
}

func delEvent(key string, rev int64) Event { return Event{Rev: rev, Key: key, Delete: true} }

// A history, and the operations that made it.
func goodRun() ([]Op, []Event) {
	ops := []Op{
		put(0, "rb/k0", "a", 0, 1, 2, KV{}),
		put(1, "rb/k0", "b", 2, 3, 3, kv("a", 2, 2, 1)),
		get(2, "rb/k0", 4, 5, 3, kv("b", 3, 2, 2)),
		{Client: 0, Input: Input{Kind: Delete, Key: "rb/k0"}, Output: Output{Rev: 4, Deleted: 1, KV: kv("b", 3, 2, 2)}, Call: 6e6, Return: 7e6},
		get(2, "rb/k0", 8, 9, 4, KV{}),
	}
	events := []Event{putEvent("rb/k0", "a", 2, 2, 1), putEvent("rb/k0", "b", 3, 2, 2), delEvent("rb/k0", 4)}
	return ops, events
}

func TestAGoodRunPassesEveryCheck(t *testing.T) {
	ops, events := goodRun()
	noViolation(t, checkRevisions(ops, nil))
	vs, res := checkHistory(ops, NewHistory(events))
	noViolation(t, vs)
	if res.CheckedWrites != 3 || res.CheckedReads != 5 {
		t.Fatalf("checked %d writes, %d reads", res.CheckedWrites, res.CheckedReads)
	}
	w := &Watcher{Start: 1, Events: events}
	noViolation(t, checkWatch(w, events, true, 4))
}

func TestLostAcknowledgedWrite(t *testing.T) {
	ops, events := goodRun()
	// The history lost b, acknowledged at revision 3 (a later write took its revision).
	events[1] = putEvent("rb/k0", "x", 3, 2, 2)
	vs, _ := checkHistory(ops, NewHistory(events))
	hasViolation(t, vs, "lost-write", `put(rb/k0, "b") -> @3`)
	hasViolation(t, vs, "history", "no operation wrote this value")
}

func TestStaleReadAgainstTheHistory(t *testing.T) {
	ops, events := goodRun()
	ops[2] = get(2, "rb/k0", 4, 5, 3, kv("a", 2, 2, 1)) // a at revision 3, where the history has b
	vs, _ := checkHistory(ops, NewHistory(events))
	hasViolation(t, vs, "stale-read", "but the history has")
}

func TestHistoryWithAGap(t *testing.T) {
	ops, events := goodRun()
	events[2].Rev = 6
	vs, _ := checkHistory(ops, NewHistory(events))
	hasViolation(t, vs, "history", "no event at revisions 4..5")
}

func TestWriteAppliedTwice(t *testing.T) {
	ops, events := goodRun()
	events = append(events, putEvent("rb/k0", "a", 5, 5, 1))
	vs, _ := checkHistory(ops, NewHistory(events))
	hasViolation(t, vs, "history", "applied twice")
}

func TestUnknownWritesAreSettledByTheHistory(t *testing.T) {
	ops, events := goodRun()
	ops = append(ops, unknownPut(3, "rb/k0", "c", 10), unknownPut(3, "rb/k0", "d", 12))
	events = append(events, putEvent("rb/k0", "c", 5, 5, 1))
	vs, res := checkHistory(ops, NewHistory(events))
	noViolation(t, vs)
	if res.Applied != 1 || res.NotApplied != 1 || len(res.Resolved) != len(ops)-1 {
		t.Fatalf("applied %d, not applied %d, %d operations kept", res.Applied, res.NotApplied, len(res.Resolved))
	}
	for _, op := range res.Resolved {
		if op.Input.Value == "c" && (!op.Output.Unknown || op.Output.Rev != 5) {
			t.Fatalf("c settled as %+v", op.Output)
		}
	}
}

func TestWatchWithAGap(t *testing.T) {
	_, events := goodRun()
	w := &Watcher{ID: 1, Start: 1, Events: []Event{events[0], events[2]}}
	hasViolation(t, checkWatch(w, events, true, 4), "watch", `missed PUT rb/k0="b" @3 (create 2, v2) (a gap`)
}

func TestWatchWithADuplicateEvent(t *testing.T) {
	_, events := goodRun()
	w := &Watcher{ID: 1, Start: 1, Events: []Event{events[0], events[1], events[1], events[2]}}
	hasViolation(t, checkWatch(w, events, true, 4), "watch", "twice")
}

func TestWatchOutOfOrder(t *testing.T) {
	_, events := goodRun()
	w := &Watcher{ID: 1, Start: 1, Events: []Event{events[0], events[2], events[1]}}
	hasViolation(t, checkWatch(w, events, true, 4), "watch", "out of order")
}

func TestWatchThatStopped(t *testing.T) {
	_, events := goodRun()
	w := &Watcher{ID: 1, Start: 1, Events: events[:2]}
	hasViolation(t, checkWatch(w, events, true, 4), "watch", "stopped at revision 3")
}

func TestWatchFromALaterRevision(t *testing.T) {
	_, events := goodRun()
	noViolation(t, checkWatch(&Watcher{ID: 1, Start: 3, Events: events[1:]}, events, true, 4))
	hasViolation(t, checkWatch(&Watcher{ID: 1, Start: 3, Events: events}, events, true, 4), "watch", "before its start revision")
}

func TestWatchAgainstAcknowledgedWritesOnly(t *testing.T) {
	ops, events := goodRun()
	reference := acknowledgedEvents(ops)
	noViolation(t, checkWatch(&Watcher{Start: 1, Events: events}, reference, false, 4))
	hasViolation(t, checkWatch(&Watcher{Start: 1, Events: events[:1]}, reference, false, 4), "watch", "never got")
}

func TestRevisionGoingBackwards(t *testing.T) {
	ops, _ := goodRun()
	// After the restart, a read returns revision 2 though revision 4 was acknowledged before the kill.
	ops = append(ops, get(2, "rb/k0", 20, 21, 2, kv("a", 2, 2, 1)))
	hasViolation(t, checkRevisions(ops, []int64{15e6}), "revision", "revision went backwards (across kill 1 at 0.015s)")
}

func TestTwoWritesAtOneRevision(t *testing.T) {
	ops := []Op{
		put(0, "rb/k0", "a", 0, 1, 2, KV{}),
		put(1, "rb/k1", "b", 0, 1, 2, KV{}),
	}
	hasViolation(t, checkRevisions(ops, nil), "revision", "two writes acknowledged at revision 2")
	ops = []Op{put(0, "rb/k0", "a", 0, 1, 2, KV{}), put(1, "rb/k1", "b", 2, 3, 2, KV{})}
	hasViolation(t, checkRevisions(ops, nil), "revision", "did not get a new revision")
}

func newLease(stopped int64, ttl int64) *Lease {
	return &Lease{ID: 7, TTL: ttl, Keys: []string{"rb/lease/k"}, Stopped: stopped, LastAck: stopped,
		Written: map[string]bool{"rb/lease/k": true}, GoneSeen: map[string]int64{}, Reported: map[string]bool{}}
}

const second = int64(time.Second)

func TestKeyOfAnExpiredLeaseComingBack(t *testing.T) {
	l := newLease(0, 3)
	restarts := &Restarts{}
	slack := 2 * time.Second
	if v := observeLeaseKey(l, "rb/lease/k", false, 4*second, 4*second, restarts, slack); v != nil {
		t.Fatal(v)
	}
	// After a restart the key is there again.
	restarts.killed(5 * second)
	restarts.ready(6 * second)
	v := observeLeaseKey(l, "rb/lease/k", true, 7*second, 7*second, restarts, slack)
	if v == nil || !strings.Contains(v.Detail, "came back") {
		t.Fatalf("%v", v)
	}
	// Reported once.
	if v := observeLeaseKey(l, "rb/lease/k", true, 8*second, 8*second, restarts, slack); v != nil {
		t.Fatal(v)
	}
}

func TestKeyOfALapsedLeaseStaysTooLong(t *testing.T) {
	slack := 2 * time.Second
	restarts := &Restarts{}
	l := newLease(0, 3)
	// Still there within TTL + slack: fine.
	if v := observeLeaseKey(l, "rb/lease/k", true, 4*second, 4*second, restarts, slack); v != nil {
		t.Fatal(v)
	}
	v := observeLeaseKey(l, "rb/lease/k", true, 5*second+1, 5*second+1, restarts, slack)
	if v == nil || !strings.Contains(v.Detail, "past its deadline 5.000s") {
		t.Fatalf("%v", v)
	}
}

func TestARestartGivesALeaseAFreshTTL(t *testing.T) {
	slack := 2 * time.Second
	restarts := &Restarts{}
	restarts.killed(1 * second)
	restarts.ready(2 * second)
	l := newLease(0, 3)
	if v := observeLeaseKey(l, "rb/lease/k", true, 6*second, 6*second, restarts, slack); v != nil {
		t.Fatal(v) // deadline 2 + 3 + 2 = 7 s
	}
	if v := observeLeaseKey(l, "rb/lease/k", true, 7*second, 7*second, restarts, slack); v == nil {
		t.Fatal("a key 5 s after the restart with a 3 s TTL and 2 s slack is not reported")
	}
}

func TestKeyOfARevokedLease(t *testing.T) {
	l := newLease(0, 60)
	l.Revoked = 1 * second
	v := observeLeaseKey(l, "rb/lease/k", true, 1*second+1, 1*second+2, &Restarts{}, 2*time.Second)
	if v == nil || !strings.Contains(v.Detail, "revoked") {
		t.Fatalf("%v", v)
	}
}

func TestLeaseGoneBeforeItsTTL(t *testing.T) {
	l := newLease(0, 3)
	v := observeLeaseKey(l, "rb/lease/k", false, 2*second, 2*second, &Restarts{}, 2*time.Second)
	if v == nil || !strings.Contains(v.Detail, "before its TTL") {
		t.Fatalf("%v", v)
	}
}

func TestLeaseKeyComingBackInTheHistory(t *testing.T) {
	events := []Event{putEvent("rb/lease/k", "x", 2, 2, 1), delEvent("rb/lease/k", 3), putEvent("rb/lease/k", "x", 4, 4, 1)}
	vs, _ := checkHistory(nil, NewHistory(events))
	hasViolation(t, vs, "lease", "came back after its delete")
}

func TestUnknownDeletesAreSettledByTheHistory(t *testing.T) {
	unknownDelete := func(call int64) Op {
		return Op{Client: 3, Input: Input{Kind: Delete, Key: "rb/k0"}, Output: Output{Unknown: true}, Call: call * 1e6, Return: infinity}
	}
	ops, events := goodRun()
	// No delete in the history but the acknowledged one: the unknown delete did nothing.
	vs, res := checkHistory(append(ops, unknownDelete(10)), NewHistory(events))
	noViolation(t, vs)
	if res.NotApplied != 1 || len(res.Resolved) != len(ops) {
		t.Fatalf("not applied %d, %d operations kept", res.NotApplied, len(res.Resolved))
	}
	// One more delete in the history: the unknown delete made it.
	events = append(events, putEvent("rb/k0", "c", 5, 5, 1), delEvent("rb/k0", 6))
	ops = append(ops, put(1, "rb/k0", "c", 10, 11, 5, KV{}), unknownDelete(12))
	vs, res = checkHistory(ops, NewHistory(events))
	noViolation(t, vs)
	last := res.Resolved[len(res.Resolved)-1]
	if res.Applied != 1 || last.Input.Kind != Delete || last.Output.Rev != 6 {
		t.Fatalf("applied %d, last %+v", res.Applied, last)
	}
	if r := linearizable(t, res.Resolved); r != "Ok" {
		t.Fatalf("settled history: %s", r)
	}
	// A delete nobody could have made.
	vs, _ = checkHistory(ops[:len(ops)-1], NewHistory(events))
	hasViolation(t, vs, "history", "no delete of this key that could have made it")
	// Nor a delete sent after the server answered at its revision (the final read at revision 6).
	ops = append(ops[:len(ops)-1], get(2, "rb/k0", 13, 14, 6, KV{}), unknownDelete(20))
	vs, _ = checkHistory(ops, NewHistory(events))
	hasViolation(t, vs, "history", "no delete of this key that could have made it")
}
