package main

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// A small builder of histories: times in milliseconds.
func put(client int, key, value string, call, ret int64, rev int64, prev KV) Op {
	return Op{Client: client, Input: Input{Kind: Put, Key: key, Value: value},
		Output: Output{Rev: rev, KV: prev}, Call: call * 1e6, Return: ret * 1e6}
}

func get(client int, key string, call, ret int64, header int64, kv KV) Op {
	return Op{Client: client, Input: Input{Kind: Get, Key: key}, Output: Output{Rev: header, KV: kv},
		Call: call * 1e6, Return: ret * 1e6}
}

func unknownPut(client int, key, value string, call int64) Op {
	return Op{Client: client, Input: Input{Kind: Put, Key: key, Value: value}, Output: Output{Unknown: true},
		Call: call * 1e6, Return: infinity}
}

func kv(value string, mod, create, version int64) KV {
	return KV{Exists: true, Value: value, ModRev: mod, CreateRev: create, Version: version}
}

func linearizable(t *testing.T, ops []Op) porcupine.CheckResult {
	t.Helper()
	return porcupine.CheckOperationsTimeout(kvModel, toPorcupine(ops), 10*time.Second)
}

func TestSequentialHistoryIsLinearizable(t *testing.T) {
	ops := []Op{
		put(0, "k", "a", 0, 1, 2, KV{}),
		get(1, "k", 2, 3, 2, kv("a", 2, 2, 1)),
		put(0, "k", "b", 4, 5, 3, kv("a", 2, 2, 1)),
		get(1, "k", 6, 7, 3, kv("b", 3, 2, 2)),
		{Client: 0, Input: Input{Kind: Delete, Key: "k"}, Output: Output{Rev: 4, Deleted: 1, KV: kv("b", 3, 2, 2)}, Call: 8e6, Return: 9e6},
		get(1, "k", 10, 11, 4, KV{}),
	}
	if r := linearizable(t, ops); r != porcupine.Ok {
		t.Fatalf("a sequential history: %s", r)
	}
}

func TestConcurrentReadMaySeeEitherValue(t *testing.T) {
	for _, seen := range []KV{kv("a", 2, 2, 1), kv("b", 3, 2, 2)} {
		ops := []Op{
			put(0, "k", "a", 0, 1, 2, KV{}),
			put(0, "k", "b", 2, 10, 3, kv("a", 2, 2, 1)),
			get(1, "k", 3, 4, seen.ModRev, seen),
		}
		if r := linearizable(t, ops); r != porcupine.Ok {
			t.Fatalf("a read concurrent with a write that sees %s: %s", seen, r)
		}
	}
}

func TestStaleReadIsRejected(t *testing.T) {
	ops := []Op{
		put(0, "k", "a", 0, 1, 2, KV{}),
		put(0, "k", "b", 2, 3, 3, kv("a", 2, 2, 1)),
		get(1, "k", 4, 5, 3, kv("a", 2, 2, 1)), // after b was acknowledged
	}
	if r := linearizable(t, ops); r != porcupine.Illegal {
		t.Fatalf("a stale read: %s, want Illegal", r)
	}
}

func TestLostAcknowledgedWriteIsRejected(t *testing.T) {
	// b was acknowledged; the final read after a restart shows a.
	ops := []Op{
		put(0, "k", "a", 0, 1, 2, KV{}),
		put(0, "k", "b", 2, 3, 3, kv("a", 2, 2, 1)),
		get(9, "k", 100, 101, 2, kv("a", 2, 2, 1)),
	}
	if r := linearizable(t, ops); r != porcupine.Illegal {
		t.Fatalf("a lost write: %s, want Illegal", r)
	}
}

func TestUnknownWriteMayOrMayNotHaveHappened(t *testing.T) {
	for _, seen := range []KV{kv("a", 2, 2, 1), kv("b", 5, 2, 2)} {
		ops := []Op{
			put(0, "k", "a", 0, 1, 2, KV{}),
			unknownPut(0, "k", "b", 2),
			get(1, "k", 50, 51, 5, seen),
		}
		if r := linearizable(t, ops); r != porcupine.Ok {
			t.Fatalf("a write of unknown outcome, then a read of %s: %s", seen, r)
		}
	}
	// But not a value nobody wrote, nor an impossible revision.
	for _, seen := range []KV{kv("c", 5, 2, 2), kv("b", 2, 2, 2), kv("b", 5, 2, 3)} {
		ops := []Op{put(0, "k", "a", 0, 1, 2, KV{}), unknownPut(0, "k", "b", 2), get(1, "k", 50, 51, 5, seen)}
		if r := linearizable(t, ops); r != porcupine.Illegal {
			t.Fatalf("a read of %s: %s, want Illegal", seen, r)
		}
	}
}

func TestRevisionsOfAKeyOnlyGrow(t *testing.T) {
	ops := []Op{
		put(0, "k", "a", 0, 1, 5, KV{}),
		put(0, "k", "b", 2, 3, 4, kv("a", 5, 5, 1)), // a later write with a lower revision
	}
	if r := linearizable(t, ops); r != porcupine.Illegal {
		t.Fatalf("a revision going backwards on a key: %s, want Illegal", r)
	}
}

func TestTxnFollowsEtcdComparisons(t *testing.T) {
	txn := func(cmp Compare, expected string, expectedRev int64, succeeded bool, rev int64, read KV) Op {
		return Op{Input: Input{Kind: Txn, Key: "k", Value: "new", Compare: cmp, Expected: expected, ExpectedRev: expectedRev},
			Output: Output{Rev: rev, Succeeded: succeeded, KV: read}, Call: 10e6, Return: 11e6}
	}
	cases := []struct {
		name  string
		ops   []Op
		legal bool
	}{
		// etcd: a value comparison on a key that does not exist fails, even with the empty value.
		{"value compare on a missing key succeeds", []Op{txn(CompareValue, "", 0, true, 2, KV{})}, false},
		{"value compare on a missing key fails", []Op{txn(CompareValue, "", 0, false, 1, KV{})}, true},
		// A mod revision comparison sees 0 there.
		{"mod revision 0 on a missing key succeeds", []Op{txn(CompareModRev, "", 0, true, 2, KV{})}, true},
		{"mod revision 0 on a missing key fails", []Op{txn(CompareModRev, "", 0, false, 1, KV{})}, false},
		{"value compare holds", []Op{put(0, "k", "a", 0, 1, 2, KV{}), txn(CompareValue, "a", 0, true, 3, KV{})}, true},
		{"value compare holds but fails", []Op{put(0, "k", "a", 0, 1, 2, KV{}), txn(CompareValue, "a", 0, false, 2, kv("a", 2, 2, 1))}, false},
		{"mod revision compare holds", []Op{put(0, "k", "a", 0, 1, 2, KV{}), txn(CompareModRev, "", 2, true, 3, KV{})}, true},
		{"mod revision compare differs but succeeds", []Op{put(0, "k", "a", 0, 1, 2, KV{}), txn(CompareModRev, "", 7, true, 3, KV{})}, false},
	}
	for _, c := range cases {
		r := linearizable(t, c.ops)
		if (r == porcupine.Ok) != c.legal || r == porcupine.Unknown {
			t.Errorf("%s: %s, want legal=%t", c.name, r, c.legal)
		}
	}
}

func TestPlantedStaleReadIsFoundInARealisticHistory(t *testing.T) {
	ops := []Op{
		put(0, "k", "a", 0, 1, 2, KV{}),
		put(1, "k", "b", 2, 3, 3, kv("a", 2, 2, 1)),
		get(2, "k", 4, 5, 3, kv("b", 3, 2, 2)),
	}
	if r := linearizable(t, ops); r != porcupine.Ok {
		t.Fatalf("the real history: %s", r)
	}
	bad, what, ok := plantStaleRead(ops)
	if !ok {
		t.Fatal("no stale read planted")
	}
	if r := linearizable(t, bad); r != porcupine.Illegal {
		t.Fatalf("planted %s: %s, want Illegal", what, r)
	}
	if note, vs := checkCanary(ops, 10*time.Second); len(vs) != 0 || !strings.Contains(note, "rejected") {
		t.Fatalf("canary: %q %v", note, vs)
	}
}

func TestNonLinearizableKeyGetsAVisualisation(t *testing.T) {
	dir := t.TempDir()
	ops := []Op{
		put(0, "rb/k1", "a", 0, 1, 2, KV{}),
		put(0, "rb/k1", "b", 2, 3, 3, kv("a", 2, 2, 1)),
		get(1, "rb/k1", 4, 5, 3, kv("a", 2, 2, 1)),
		put(0, "rb/k2", "c", 0, 1, 4, KV{}),
	}
	vs, res := checkLinearizability(ops, 10*time.Second, dir)
	if len(vs) != 1 || vs[0].Kind != "linearizability" || !strings.Contains(vs[0].Detail, "rb/k1") {
		t.Fatalf("violations: %v", vs)
	}
	if len(res.Files) != 1 || !strings.HasSuffix(res.Files[0], "linearizability-rb_k1-0.html") {
		t.Fatalf("files: %v", res.Files)
	}
	if !strings.Contains(vs[0].Detail, "get(rb/k1)") {
		t.Fatalf("the violation does not name the read that does not fit: %s", vs[0].Detail)
	}
}

// simulate makes a linearizable history of one key: clients whose operations overlap, each taking effect
// at a random moment between its invocation and its return.
func simulate(n, clients int, rng *rand.Rand) []Op {
	type effect struct {
		at  int64
		idx int
	}
	ops := make([]Op, n)
	clock := make([]int64, clients)
	var effects []effect
	kinds := []Kind{Get, Get, Get, Put, Put, Delete, Txn}
	for i := range ops {
		c := rng.Intn(clients)
		call := clock[c] + int64(rng.Intn(1000))
		ret := call + 50 + int64(rng.Intn(300))
		clock[c] = ret
		ops[i] = Op{Client: c, Input: Input{Kind: kinds[rng.Intn(len(kinds))], Key: "k", Value: fmt.Sprint("v", i)}, Call: call, Return: ret}
		effects = append(effects, effect{call + rng.Int63n(ret-call+1), i})
	}
	sort.Slice(effects, func(a, b int) bool { return effects[a].at < effects[b].at })
	var s KV
	rev := int64(1)
	write := func(value string) KV {
		rev++
		next := KV{Exists: true, Value: value, ModRev: rev, CreateRev: rev, Version: 1}
		if s.Exists {
			next.CreateRev, next.Version = s.CreateRev, s.Version+1
		}
		return next
	}
	for _, e := range effects {
		op := &ops[e.idx]
		switch op.Input.Kind {
		case Get:
			op.Output = Output{Rev: rev, KV: s}
		case Put:
			prev := s
			s = write(op.Input.Value)
			op.Output = Output{Rev: rev, KV: prev}
		case Delete:
			if s.Exists {
				rev++
				op.Output = Output{Rev: rev, Deleted: 1, KV: s}
				s = KV{}
			} else {
				op.Output = Output{Rev: rev}
			}
		case Txn:
			op.Input.Compare, op.Input.ExpectedRev = CompareModRev, s.ModRev
			if rng.Intn(2) == 0 {
				op.Input.ExpectedRev = 0
			}
			if s.ModRev == op.Input.ExpectedRev || !s.Exists && op.Input.ExpectedRev == 0 {
				s = write(op.Input.Value)
				op.Output = Output{Rev: rev, Succeeded: true}
			} else {
				op.Output = Output{Rev: rev, KV: s}
			}
		}
	}
	sort.SliceStable(ops, func(a, b int) bool { return ops[a].Call < ops[b].Call })
	return ops
}

func TestStretchesOfASimulatedHistory(t *testing.T) {
	defer func(size int) { segmentSize = size }(segmentSize)
	segmentSize = 100
	ops := simulate(5000, 4, rand.New(rand.NewSource(1)))
	vs, res := checkLinearizability(ops, 30*time.Second, "")
	if len(vs) != 0 || res.Segments < 10 {
		t.Fatalf("a linearizable history: %v, in %d stretches", vs, res.Segments)
	}
	// A stale read planted anywhere is found, whichever stretch it lands in.
	bad, what, ok := plantStaleRead(ops)
	if !ok {
		t.Fatal("no stale read planted")
	}
	if vs, _ := checkLinearizability(bad, 30*time.Second, ""); len(vs) != 1 || vs[0].Kind != "linearizability" {
		t.Fatalf("planted %s: %v", what, vs)
	}
}

func TestAStretchStartsFromTheReadThatEndsThePreviousOne(t *testing.T) {
	defer func(size int) { segmentSize = size }(segmentSize)
	segmentSize = 1
	ops := []Op{
		put(0, "k", "a", 0, 1, 2, KV{}),
		put(0, "k", "b", 2, 3, 3, kv("a", 2, 2, 1)),
		get(1, "k", 4, 5, 3, kv("b", 3, 2, 2)), // alone: the cut
		get(1, "k", 6, 7, 3, kv("a", 2, 2, 1)), // stale
	}
	segs := segments(ops, 1)
	if len(segs) != 2 || len(segs[1].ops) != 1 || segs[1].start.Value != "b" || !segs[1].start.ModKnown {
		t.Fatalf("segments: %+v", segs)
	}
	if vs, _ := checkLinearizability(ops, 10*time.Second, ""); len(vs) != 1 || !strings.Contains(vs[0].Detail, "stretch 1") {
		t.Fatalf("%v", vs)
	}
	// A read that overlaps another operation is no cut.
	ops[3].Call = 4.5e6
	if segs := segments(ops, 1); len(segs) != 1 {
		t.Fatalf("segments: %+v", segs)
	}
}

func TestUnknownWritesAppliedReturnByTheFirstAnswerAtTheirRevision(t *testing.T) {
	ops := []Op{
		{Input: Input{Kind: Put, Key: "k", Value: "a"}, Output: Output{Unknown: true, Rev: 5}, Call: 1, Return: infinity},
		get(1, "j", 0, 3, 4, KV{}),
		get(1, "j", 0, 9, 6, KV{}),
		get(1, "j", 0, 7, 5, KV{}),
		{Input: Input{Kind: Put, Key: "k", Value: "b"}, Output: Output{Unknown: true, Rev: 9}, Call: 1, Return: infinity},
	}
	out, vs := boundUnknownReturns(ops)
	if out[0].Return != 7e6 || out[4].Return != infinity || len(vs) != 0 {
		t.Fatalf("returns %d, %d; %v", out[0].Return, out[4].Return, vs)
	}
	// Applied at a revision the server had answered before the write was sent.
	ops[0].Call = 8e6
	if _, vs := boundUnknownReturns(ops); len(vs) != 1 || !strings.Contains(vs[0].Detail, "before it was sent") {
		t.Fatalf("%v", vs)
	}
}

func TestAStretchTooLongToCheckIsAFailure(t *testing.T) {
	defer func(limit int64) { checkMemory = limit }(checkMemory)
	checkMemory = 1000
	ops := simulate(200, 4, rand.New(rand.NewSource(1)))
	vs, _ := checkLinearizability(ops, 10*time.Second, "")
	if len(vs) == 0 || vs[0].Kind != "checker" || !strings.Contains(vs[0].Detail, "too long to check") {
		t.Fatalf("%v", vs)
	}
}
