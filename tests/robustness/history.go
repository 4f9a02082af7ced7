package main

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// Kind names an operation on one key of the workload.
type Kind int

const (
	Get Kind = iota
	Put
	Delete
	// Txn compares the key's value or mod revision, puts a new value when the comparison holds and reads
	// the key when it does not.
	Txn
)

func (k Kind) String() string {
	return [...]string{"get", "put", "delete", "txn"}[k]
}

// Compare is what a Txn compares.
type Compare int

const (
	// CompareValue: the value equals Expected (etcd: always false on a key that does not exist).
	CompareValue Compare = iota
	// CompareModRev: the mod revision equals ExpectedRev (0 for a key that does not exist).
	CompareModRev
)

// Input is one operation as invoked.
type Input struct {
	Kind        Kind
	Key         string
	Value       string // Put, Txn: the value written (unique in a run)
	Compare     Compare
	Expected    string // Txn with CompareValue
	ExpectedRev int64  // Txn with CompareModRev
}

// KV is a key as read: absent, or present with its value and revisions.
type KV struct {
	Exists    bool
	Value     string
	ModRev    int64
	CreateRev int64
	Version   int64
}

func (kv KV) String() string {
	if !kv.Exists {
		return "absent"
	}
	return fmt.Sprintf("%q@%d(create %d, v%d)", kv.Value, kv.ModRev, kv.CreateRev, kv.Version)
}

// Output is what an operation returned. Unknown: it failed or timed out, so it may or may not have taken
// effect (Rev may still be known, from the event history: see resolveUnknown).
type Output struct {
	Unknown   bool
	Rev       int64 // the response header's revision: for a write that changed the key, its revision
	Succeeded bool  // Txn: the comparison held
	Deleted   int64 // Delete: keys deleted
	KV        KV    // Get, Txn that failed (its else branch reads the key): the key; Put, Delete: the previous key
}

// Op is one operation of the history, with its invocation and return times in nanoseconds of the run's
// monotonic clock. An unknown outcome returns at infinity (see Recorder.Operations).
type Op struct {
	Client int
	Input  Input
	Output Output
	Call   int64
	Return int64
}

// Mutated tells whether an operation that returned changed its key (and so has a revision of its own).
func (o Op) Mutated() bool {
	if o.Output.Unknown {
		return false
	}
	switch o.Input.Kind {
	case Put:
		return true
	case Txn:
		return o.Output.Succeeded
	case Delete:
		return o.Output.Deleted > 0
	}
	return false
}

func (o Op) String() string {
	return fmt.Sprintf("client %d %s [%s, %s]", o.Client, describe(o.Input, o.Output), ms(o.Call), msOrEnd(o.Return))
}

func ms(ns int64) string { return fmt.Sprintf("%.3fs", float64(ns)/1e9) }

func msOrEnd(ns int64) string {
	if ns >= infinity {
		return "never"
	}
	return ms(ns)
}

// infinity is the return time of an operation whose outcome is unknown.
const infinity = int64(1) << 62

// Event is one event of a watch: a put or a delete of a key at a revision.
type Event struct {
	Rev       int64
	Key       string
	Delete    bool
	Value     string
	ModRev    int64
	CreateRev int64
	Version   int64
}

func (e Event) String() string {
	if e.Delete {
		return fmt.Sprintf("DELETE %s @%d", e.Key, e.Rev)
	}
	return fmt.Sprintf("PUT %s=%q @%d (create %d, v%d)", e.Key, e.Value, e.Rev, e.CreateRev, e.Version)
}

// Recorder collects the operations of every client.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the run's monotonic clock, in nanoseconds.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

func (r *Recorder) Add(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Operations returns the history sorted by invocation time.
func (r *Recorder) Operations() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := append([]Op(nil), r.ops...)
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	return ops
}
