package main

import (
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/anishathalye/porcupine"
)

// keyState is the model's state of one key: etcd's key-value semantics for one key (the history is
// partitioned by key). The version is always known; the mod and create revisions are unknown after a write
// whose outcome is unknown, until a read shows them.
type keyState struct {
	Exists      bool
	Value       string
	Version     int64
	ModRev      int64 // exact when ModKnown; otherwise a lower bound (exclusive). Absent key: its delete's revision
	ModKnown    bool
	CreateRev   int64 // exact when CreateKnown (present keys only)
	CreateKnown bool
}

func (s keyState) String() string {
	if !s.Exists {
		return "absent"
	}
	mod := fmt.Sprintf("%d", s.ModRev)
	if !s.ModKnown {
		mod = fmt.Sprintf(">%d", s.ModRev)
	}
	create := "?"
	if s.CreateKnown {
		create = fmt.Sprintf("%d", s.CreateRev)
	}
	return fmt.Sprintf("%q@%s(create %s, v%d)", s.Value, mod, create, s.Version)
}

// matches tells whether a key as read can be this state, and returns the state with what the read showed.
func (s keyState) matches(kv KV) (bool, keyState) {
	if kv.Exists != s.Exists {
		return false, s
	}
	if !kv.Exists {
		return true, s
	}
	if kv.Value != s.Value || kv.Version != s.Version {
		return false, s
	}
	if s.ModKnown && kv.ModRev != s.ModRev || !s.ModKnown && kv.ModRev <= s.ModRev {
		return false, s
	}
	if s.CreateKnown && kv.CreateRev != s.CreateRev || kv.CreateRev > kv.ModRev || kv.CreateRev <= 0 {
		return false, s
	}
	if (kv.Version == 1) != (kv.CreateRev == kv.ModRev) {
		return false, s
	}
	s.ModRev, s.ModKnown = kv.ModRev, true
	s.CreateRev, s.CreateKnown = kv.CreateRev, true
	return true, s
}

// written is the state after a put of value at revision rev (0: unknown).
func (s keyState) written(value string, rev int64) keyState {
	next := keyState{Exists: true, Value: value, Version: s.Version + 1, ModRev: s.ModRev}
	if s.Exists {
		next.CreateRev, next.CreateKnown = s.CreateRev, s.CreateKnown
	} else {
		next.Version = 1
	}
	if rev > 0 {
		next.ModRev, next.ModKnown = rev, true
		if !s.Exists {
			next.CreateRev, next.CreateKnown = rev, true
		}
	}
	return next
}

// deleted is the state after a delete at revision rev (0: unknown).
func (s keyState) deleted(rev int64) keyState {
	if rev > 0 {
		return keyState{ModRev: rev, ModKnown: true}
	}
	return keyState{ModRev: s.ModRev}
}

// newRevisionFits tells whether a write at revision rev can follow this state.
func (s keyState) newRevisionFits(rev int64) bool { return rev > s.ModRev }

// headerFits tells whether a response's header revision can be read at this state.
func (s keyState) headerFits(rev int64) bool { return !s.ModKnown || rev >= s.ModRev }

type tri int

const (
	no tri = iota
	yes
	maybe
)

// holds is etcd's comparison of a Txn against the state: a value comparison fails on a key that does
// not exist; a mod revision comparison sees 0 there.
func (s keyState) holds(in Input) tri {
	switch in.Compare {
	case CompareValue:
		if s.Exists && s.Value == in.Expected {
			return yes
		}
		return no
	default:
		if !s.Exists || in.ExpectedRev == 0 {
			if !s.Exists && in.ExpectedRev == 0 {
				return yes
			}
			return no
		}
		if s.ModKnown {
			if s.ModRev == in.ExpectedRev {
				return yes
			}
			return no
		}
		if in.ExpectedRev <= s.ModRev {
			return no
		}
		return maybe
	}
}

// step is the sequential specification: the states an operation can lead to from s, none if it cannot
// have returned what it returned.
func step(s keyState, in Input, out Output) []keyState {
	switch in.Kind {
	case Get:
		if out.Unknown {
			return []keyState{s}
		}
		ok, next := s.matches(out.KV)
		if !ok || !next.headerFits(out.Rev) {
			return nil
		}
		return []keyState{next}
	case Put:
		if out.Unknown {
			if out.Rev > 0 && !s.newRevisionFits(out.Rev) {
				return nil
			}
			return []keyState{s.written(in.Value, out.Rev)}
		}
		ok, prev := s.matches(out.KV)
		if !ok || !prev.newRevisionFits(out.Rev) {
			return nil
		}
		return []keyState{prev.written(in.Value, out.Rev)}
	case Delete:
		if out.Unknown {
			if out.Rev > 0 { // it deleted the key at that revision
				if !s.Exists || !s.newRevisionFits(out.Rev) {
					return nil
				}
				return []keyState{s.deleted(out.Rev)}
			}
			if !s.Exists {
				return []keyState{s}
			}
			return []keyState{s.deleted(0)}
		}
		if out.Deleted == 0 {
			if s.Exists || !s.headerFits(out.Rev) {
				return nil
			}
			return []keyState{s}
		}
		ok, prev := s.matches(out.KV)
		if !ok || !prev.Exists || !prev.newRevisionFits(out.Rev) {
			return nil
		}
		return []keyState{prev.deleted(out.Rev)}
	case Txn:
		h := s.holds(in)
		pinned := s
		if h == maybe {
			// Holding pins the unknown mod revision to the expected one.
			pinned.ModRev, pinned.ModKnown = in.ExpectedRev, true
		}
		if out.Unknown {
			var next []keyState
			if h != no && (out.Rev == 0 || pinned.newRevisionFits(out.Rev)) {
				next = append(next, pinned.written(in.Value, out.Rev))
			}
			if h != yes && out.Rev == 0 {
				next = append(next, s)
			}
			return next
		}
		if out.Succeeded {
			if h == no || !pinned.newRevisionFits(out.Rev) {
				return nil
			}
			return []keyState{pinned.written(in.Value, out.Rev)}
		}
		if h == yes {
			return nil
		}
		ok, next := s.matches(out.KV)
		if !ok || !next.headerFits(out.Rev) || next.holds(in) == yes {
			return nil
		}
		return []keyState{next}
	}
	return nil
}

func describe(in Input, out Output) string {
	var call string
	switch in.Kind {
	case Get:
		call = fmt.Sprintf("get(%s)", in.Key)
	case Put:
		call = fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
	case Delete:
		call = fmt.Sprintf("delete(%s)", in.Key)
	case Txn:
		cond := fmt.Sprintf("value=%q", in.Expected)
		if in.Compare == CompareModRev {
			cond = fmt.Sprintf("mod=%d", in.ExpectedRev)
		}
		call = fmt.Sprintf("txn(%s if %s then put %q)", in.Key, cond, in.Value)
	}
	if out.Unknown {
		if out.Rev > 0 {
			return fmt.Sprintf("%s -> unknown (applied @%d per the event history)", call, out.Rev)
		}
		return call + " -> unknown"
	}
	switch in.Kind {
	case Get:
		return fmt.Sprintf("%s -> %s @%d", call, out.KV, out.Rev)
	case Put:
		return fmt.Sprintf("%s -> @%d, prev %s", call, out.Rev, out.KV)
	case Delete:
		if out.Deleted == 0 {
			return fmt.Sprintf("%s -> none @%d", call, out.Rev)
		}
		return fmt.Sprintf("%s -> deleted @%d, prev %s", call, out.Rev, out.KV)
	default:
		if out.Succeeded {
			return fmt.Sprintf("%s -> succeeded @%d", call, out.Rev)
		}
		return fmt.Sprintf("%s -> failed, read %s @%d", call, out.KV, out.Rev)
	}
}

func (s keyState) hash() uint64 {
	h := fnv.New64a()
	h.Write([]byte(s.Value))
	var b [8 * 4]byte
	for i, v := range []int64{s.Version, s.ModRev, s.CreateRev, flags(s.Exists, s.ModKnown, s.CreateKnown)} {
		for j := 0; j < 8; j++ {
			b[8*i+j] = byte(v >> (8 * j))
		}
	}
	h.Write(b[:])
	return h.Sum64()
}

func flags(bits ...bool) int64 {
	var f int64
	for i, b := range bits {
		if b {
			f |= 1 << i
		}
	}
	return f
}

// kvNondeterministic is the Porcupine model of etcd's key-value semantics for put, get, delete and a
// compare-and-set transaction, partitioned by key.
var kvNondeterministic = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			key := op.Input.(Input).Key
			byKey[key] = append(byKey[key], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts [][]porcupine.Operation
		for _, k := range keys {
			parts = append(parts, byKey[k])
		}
		return parts
	},
	Step: func(state, input, output interface{}) []interface{} {
		var next []interface{}
		for _, s := range step(state.(keyState), input.(Input), output.(Output)) {
			next = append(next, s)
		}
		return next
	},
	Equal:             func(a, b interface{}) bool { return a.(keyState) == b.(keyState) },
	Hash:              func(state interface{}) uint64 { return state.(keyState).hash() },
	DescribeOperation: func(input, output interface{}) string { return describe(input.(Input), output.(Output)) },
	DescribeState:     func(state interface{}) string { return state.(keyState).String() },
}

// kvModel is the model from an empty key.
var kvModel = modelFrom(keyState{})

// modelFrom is the model of a key that starts in a known state.
func modelFrom(start keyState) porcupine.Model {
	m := kvNondeterministic
	m.Init = func() []interface{} { return []interface{}{start} }
	return m.ToModel()
}

// toPorcupine turns operations into Porcupine's.
func toPorcupine(ops []Op) []porcupine.Operation {
	history := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		history = append(history, porcupine.Operation{
			ClientId: op.Client, Input: op.Input, Output: op.Output, Call: op.Call, Return: op.Return,
		})
	}
	return history
}
