package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Violation is one property the server broke.
type Violation struct {
	Kind   string // linearizability, revision, history, lost-write, watch, lease, checker
	Detail string
}

func (v Violation) String() string { return v.Kind + ": " + v.Detail }

// capped keeps the first few violations of a kind and counts the rest.
type capped struct {
	max  int
	list []Violation
	more map[string]int
}

func (c *capped) add(v Violation) {
	n := 0
	for _, x := range c.list {
		if x.Kind == v.Kind {
			n++
		}
	}
	if n < c.max {
		c.list = append(c.list, v)
		return
	}
	if c.more == nil {
		c.more = map[string]int{}
	}
	c.more[v.Kind]++
}

func (c *capped) all() []Violation {
	out := append([]Violation(nil), c.list...)
	kinds := make([]string, 0, len(c.more))
	for k := range c.more {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		out = append(out, Violation{k, fmt.Sprintf("%d more like the ones above", c.more[k])})
	}
	return out
}

// acknowledged returns the operations that returned (not unknown).
func acknowledged(ops []Op) []Op {
	var out []Op
	for _, op := range ops {
		if !op.Output.Unknown {
			out = append(out, op)
		}
	}
	return out
}

// checkRevisions checks that revisions never go backwards in real time: an operation invoked after another
// returned sees at least its revision, and a write gets a higher one; and that no two writes share one. A
// pair across a kill is named with it: the revisions acknowledged before a kill bound those after the
// restart.
func checkRevisions(ops []Op, kills []int64) []Violation {
	c := capped{max: 5}
	ok := acknowledged(ops)
	byReturn := append([]Op(nil), ok...)
	sort.SliceStable(byReturn, func(i, j int) bool { return byReturn[i].Return < byReturn[j].Return })
	byCall := append([]Op(nil), ok...)
	sort.SliceStable(byCall, func(i, j int) bool { return byCall[i].Call < byCall[j].Call })
	var top Op // the completed operation with the highest revision so far
	p := 0
	for _, b := range byCall {
		for p < len(byReturn) && byReturn[p].Return < b.Call {
			if byReturn[p].Output.Rev > top.Output.Rev {
				top = byReturn[p]
			}
			p++
		}
		if top.Output.Rev == 0 {
			continue
		}
		across := ""
		for i, k := range kills {
			if top.Return < k && k < b.Call {
				across = fmt.Sprintf(" (across kill %d at %s)", i+1, ms(k))
			}
		}
		if b.Output.Rev < top.Output.Rev {
			c.add(Violation{"revision", fmt.Sprintf("revision went backwards%s: %s saw revision %d after %s had returned revision %d",
				across, b, b.Output.Rev, top, top.Output.Rev)})
		} else if b.Mutated() && b.Output.Rev == top.Output.Rev {
			c.add(Violation{"revision", fmt.Sprintf("a write did not get a new revision%s: %s got revision %d, which %s had already returned",
				across, b, b.Output.Rev, top)})
		}
	}
	byRev := map[int64]Op{}
	for _, op := range ok {
		if !op.Mutated() {
			continue
		}
		if other, dup := byRev[op.Output.Rev]; dup {
			c.add(Violation{"revision", fmt.Sprintf("two writes acknowledged at revision %d: %s and %s", op.Output.Rev, other, op)})
		}
		byRev[op.Output.Rev] = op
	}
	return c.all()
}

// History is the server's event history of the workload's keys, read at the end from revision 1.
type History struct {
	Events []Event
	byKey  map[string][]Event
}

func NewHistory(events []Event) *History {
	h := &History{Events: events, byKey: map[string][]Event{}}
	for _, e := range events {
		h.byKey[e.Key] = append(h.byKey[e.Key], e)
	}
	return h
}

// At is the key as of revision rev.
func (h *History) At(key string, rev int64) KV {
	evs := h.byKey[key]
	i := sort.Search(len(evs), func(i int) bool { return evs[i].Rev > rev })
	if i == 0 || evs[i-1].Delete {
		return KV{}
	}
	e := evs[i-1]
	return KV{Exists: true, Value: e.Value, ModRev: e.ModRev, CreateRev: e.CreateRev, Version: e.Version}
}

// event returns the event of key at revision rev.
func (h *History) event(key string, rev int64) (Event, bool) {
	evs := h.byKey[key]
	i := sort.Search(len(evs), func(i int) bool { return evs[i].Rev >= rev })
	if i < len(evs) && evs[i].Rev == rev {
		return evs[i], true
	}
	return Event{}, false
}

// HistoryResult is what checkHistory found out besides violations.
type HistoryResult struct {
	Resolved      []Op // the operations with unknown outcomes settled by the history
	Applied       int  // unknown writes the history shows applied
	NotApplied    int  // unknown writes it shows not applied (left out)
	CheckedWrites int
	CheckedReads  int
}

// checkHistory checks the event history on its own (revisions without gaps, versions and create revisions
// that follow each key's previous event, no key of a lease that comes back) and against the operations:
// every acknowledged write is in it at its revision, every value in it was written by an operation that did
// not fail, once, and every read returned the key as the history has it at the read's revision. It settles
// the writes whose outcome is unknown: applied at the revision the history shows, or not applied.
func checkHistory(ops []Op, h *History) ([]Violation, HistoryResult) {
	c := capped{max: 5}
	var res HistoryResult
	for i := 1; i < len(h.Events); i++ {
		prev, e := h.Events[i-1], h.Events[i]
		if e.Rev < prev.Rev {
			c.add(Violation{"history", fmt.Sprintf("the history goes back from revision %d to %d", prev.Rev, e.Rev)})
		} else if e.Rev > prev.Rev+1 {
			c.add(Violation{"history", fmt.Sprintf("the history has no event at revisions %d..%d (between %s and %s)",
				prev.Rev+1, e.Rev-1, prev, e)})
		}
	}
	keys := make([]string, 0, len(h.byKey))
	for k := range h.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		var state KV
		deleted := false
		for _, e := range h.byKey[key] {
			if e.Delete {
				if !state.Exists {
					c.add(Violation{"history", fmt.Sprintf("%s deletes a key that does not exist", e)})
				}
				state, deleted = KV{}, true
				continue
			}
			want := KV{Exists: true, Value: e.Value, ModRev: e.Rev, Version: state.Version + 1, CreateRev: state.CreateRev}
			if !state.Exists {
				want.Version, want.CreateRev = 1, e.Rev
			}
			got := KV{Exists: true, Value: e.Value, ModRev: e.ModRev, Version: e.Version, CreateRev: e.CreateRev}
			if got != want {
				c.add(Violation{"history", fmt.Sprintf("%s does not follow the key's previous event: expected %s", e, want)})
			}
			if deleted && strings.HasPrefix(key, leasePrefix) {
				c.add(Violation{"lease", fmt.Sprintf("key %s of a lease came back after its delete: %s", key, e)})
			}
			state = got
		}
	}

	byValue := map[string]Op{}
	for _, op := range ops {
		if op.Input.Kind == Put || op.Input.Kind == Txn {
			byValue[op.Input.Value] = op
		}
	}
	eventOf := map[string]Event{}
	for _, e := range h.Events {
		if e.Delete || !strings.HasPrefix(e.Key, kvPrefix) {
			continue
		}
		op, ok := byValue[e.Value]
		switch {
		case !ok || op.Input.Key != e.Key:
			c.add(Violation{"history", fmt.Sprintf("%s: no operation wrote this value to this key", e)})
		case op.Input.Kind == Txn && !op.Output.Unknown && !op.Output.Succeeded:
			c.add(Violation{"history", fmt.Sprintf("%s: the transaction that wrote it returned that its comparison failed: %s", e, op)})
		}
		if first, dup := eventOf[e.Value]; dup {
			c.add(Violation{"history", fmt.Sprintf("one write applied twice: %s and %s", first, e)})
		}
		eventOf[e.Value] = e
	}

	// The deletes of the history that no acknowledged delete made were made by deletes of unknown outcome
	// on the key. Such deletes are alike but for their invocation times, so each of those events goes to
	// one of them invoked before the server first answered at the event's revision or later (it could have
	// taken effect there); the ones left took no effect.
	acked := map[string]bool{}
	unknownDeletes := map[string][]int{} // by key: indexes in ops, by invocation
	for i, op := range ops {
		switch {
		case op.Input.Kind == Delete && op.Output.Unknown:
			unknownDeletes[op.Input.Key] = append(unknownDeletes[op.Input.Key], i)
		case op.Input.Kind == Delete && op.Mutated():
			acked[fmt.Sprintf("%s@%d", op.Input.Key, op.Output.Rev)] = true
		}
	}
	answeredBy := firstAnswers(ops)
	deleteRev := map[int]int64{} // op index -> the revision of the delete it made
	used := map[int]bool{}
	for _, e := range h.Events { // by revision
		if !e.Delete || !strings.HasPrefix(e.Key, kvPrefix) || acked[fmt.Sprintf("%s@%d", e.Key, e.Rev)] {
			continue
		}
		by := answeredBy(e.Rev)
		pick := -1
		for _, i := range unknownDeletes[e.Key] {
			if !used[i] && ops[i].Call < by {
				pick = i // the last invoked before
			}
		}
		if pick < 0 {
			c.add(Violation{"history", fmt.Sprintf("%s: no delete of this key that could have made it (acknowledged at that revision, or of unknown outcome and sent before %s)",
				e, msOrEnd(by))})
			continue
		}
		used[pick] = true
		deleteRev[pick] = e.Rev
	}

	for i, op := range ops {
		in, out := op.Input, op.Output
		if out.Unknown {
			switch {
			case in.Kind == Put || in.Kind == Txn:
				if e, ok := eventOf[in.Value]; ok {
					op.Output.Rev = e.Rev
					res.Applied++
				} else {
					res.NotApplied++
					continue
				}
			case in.Kind == Delete && deleteRev[i] == 0:
				res.NotApplied++
				continue
			case in.Kind == Delete:
				op.Output.Rev = deleteRev[i]
				res.Applied++
			}
			res.Resolved = append(res.Resolved, op)
			continue
		}
		res.Resolved = append(res.Resolved, op)
		if op.Mutated() {
			res.CheckedWrites++
			e, ok := h.event(in.Key, out.Rev)
			want := "PUT " + fmt.Sprintf("%q", in.Value)
			if ok && (in.Kind == Delete && e.Delete || in.Kind != Delete && !e.Delete && e.Value == in.Value) {
				// present as acknowledged
			} else {
				if in.Kind == Delete {
					want = "DELETE"
				}
				found := "nothing for this key"
				if ok {
					found = e.String()
				}
				c.add(Violation{"lost-write", fmt.Sprintf("acknowledged write lost: %s was acknowledged at revision %d, but the history has %s there (expected %s)",
					op, out.Rev, found, want)})
			}
		}
		// The key as the operation read it: a get or a failed transaction at its revision, the previous key of
		// a put or delete just before its own.
		var read KV
		var at int64
		switch {
		case in.Kind == Get || in.Kind == Txn && !out.Succeeded:
			read, at = out.KV, out.Rev
		case in.Kind == Put || in.Kind == Delete && out.Deleted > 0:
			read, at = out.KV, out.Rev-1
		case in.Kind == Delete:
			read, at = KV{}, out.Rev
		default:
			continue
		}
		res.CheckedReads++
		if want := h.At(in.Key, at); want != read {
			c.add(Violation{"stale-read", fmt.Sprintf("%s read %s, but the history has %s at revision %d", op, read, want, at)})
		}
	}
	return c.all(), res
}

// acknowledgedEvents are the events the acknowledged writes made, for checking a watch when the history
// could not be read.
func acknowledgedEvents(ops []Op) []Event {
	var evs []Event
	for _, op := range ops {
		if !op.Mutated() {
			continue
		}
		e := Event{Rev: op.Output.Rev, Key: op.Input.Key, Delete: op.Input.Kind == Delete}
		if !e.Delete {
			e.Value = op.Input.Value
		}
		evs = append(evs, e)
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Rev < evs[j].Rev })
	return evs
}

// checkWatch checks one watcher's events: in revision order, no event twice, and exactly the history's events
// from its start revision on (no gap), with the same contents, up to the final revision. With complete false
// (no history: it was compacted), reference holds only the acknowledged writes, and each of them in the
// watcher's range must be there.
func checkWatch(w *Watcher, reference []Event, complete bool, finalRev int64) []Violation {
	c := capped{max: 5}
	name := fmt.Sprintf("watcher %d (from revision %d)", w.ID, w.Start)
	seen := map[string]int{}
	var last Event
	for i, e := range w.Events {
		id := fmt.Sprintf("%s@%d", e.Key, e.Rev)
		if j, dup := seen[id]; dup {
			c.add(Violation{"watch", fmt.Sprintf("%s got %s twice (events %d and %d)", name, e, j, i)})
		}
		seen[id] = i
		if i > 0 && e.Rev < last.Rev {
			c.add(Violation{"watch", fmt.Sprintf("%s got %s after %s: revisions out of order", name, e, last)})
		}
		if e.Rev < w.Start {
			c.add(Violation{"watch", fmt.Sprintf("%s got %s, before its start revision", name, e)})
		}
		last = e
	}
	got := map[string]Event{}
	for _, e := range w.Events {
		got[fmt.Sprintf("%s@%d", e.Key, e.Rev)] = e
	}
	var lastRev int64
	if len(w.Events) > 0 {
		lastRev = w.Events[len(w.Events)-1].Rev
	}
	for _, want := range reference {
		if want.Rev < w.Start || want.Rev > finalRev {
			continue
		}
		e, ok := got[fmt.Sprintf("%s@%d", want.Key, want.Rev)]
		if !ok {
			if want.Rev <= lastRev {
				c.add(Violation{"watch", fmt.Sprintf("%s missed %s (a gap: it got events up to revision %d)", name, want, lastRev)})
			} else {
				c.add(Violation{"watch", fmt.Sprintf("%s stopped at revision %d and never got %s (final revision %d)",
					name, lastRev, want, finalRev)})
			}
			continue
		}
		if e.Delete != want.Delete || !want.Delete && e.Value != want.Value ||
			complete && (e.CreateRev != want.CreateRev || e.Version != want.Version) {
			c.add(Violation{"watch", fmt.Sprintf("%s got %s where the history has %s", name, e, want)})
		}
	}
	if complete {
		inHistory := map[string]bool{}
		for _, e := range reference {
			inHistory[fmt.Sprintf("%s@%d", e.Key, e.Rev)] = true
		}
		for _, e := range w.Events {
			if !inHistory[fmt.Sprintf("%s@%d", e.Key, e.Rev)] {
				c.add(Violation{"watch", fmt.Sprintf("%s got %s, which is not in the history", name, e)})
			}
		}
	}
	return c.all()
}

// LinearizabilityResult is the outcome of the Porcupine check, key by key.
type LinearizabilityResult struct {
	Keys       int
	Operations int
	Segments   int
	Largest    int // operations in the largest segment
	Elapsed    time.Duration
	Files      []string // visualisations of the segments that are not linearizable
}

// segment is a stretch of one key's history that can be checked alone: it starts in a known state.
type segment struct {
	start keyState
	ops   []Op
}

// segments cuts one key's history (sorted by invocation) at reads that overlap no other operation and
// saw the key present: every operation before such a read returned before it was invoked, every one after
// it was invoked after it returned, and after it the key's state is the one it read, whatever came
// before. So the history is linearizable if and only if each stretch is, from the state the read before
// it saw (each stretch ends with its read). Checking stretches of a few thousand operations keeps
// Porcupine's memory (which grows with the square of a history's length) small.
func segments(ops []Op, size int) []segment {
	var out []segment
	cur := segment{}
	var maxReturn int64 = -1
	for i, op := range ops {
		cur.ops = append(cur.ops, op)
		isolated := maxReturn < op.Call && (i+1 == len(ops) || ops[i+1].Call > op.Return)
		maxReturn = max(maxReturn, op.Return)
		if isolated && len(cur.ops) >= size && i+1 < len(ops) && op.Input.Kind == Get && !op.Output.Unknown && op.Output.KV.Exists {
			kv := op.Output.KV
			out = append(out, cur)
			cur = segment{start: keyState{Exists: true, Value: kv.Value, Version: kv.Version, ModRev: kv.ModRev,
				ModKnown: true, CreateRev: kv.CreateRev, CreateKnown: true}}
		}
	}
	if len(cur.ops) > 0 {
		out = append(out, cur)
	}
	return out
}

// firstAnswers returns the function that tells when the server first answered at a revision or later: the
// earliest return of an operation whose answer has that revision or a later one (infinity if none). By
// then the server had applied that revision.
func firstAnswers(ops []Op) func(rev int64) int64 {
	var answered []Op
	for _, op := range ops {
		if !op.Output.Unknown {
			answered = append(answered, op)
		}
	}
	sort.Slice(answered, func(i, j int) bool { return answered[i].Output.Rev < answered[j].Output.Rev })
	// first[i]: the earliest return among answered[i:].
	first := make([]int64, len(answered)+1)
	first[len(answered)] = infinity
	for i := len(answered) - 1; i >= 0; i-- {
		first[i] = min(first[i+1], answered[i].Return)
	}
	return func(rev int64) int64 {
		return first[sort.Search(len(answered), func(j int) bool { return answered[j].Output.Rev >= rev })]
	}
}

// boundUnknownReturns gives each write of unknown outcome that the history shows applied at revision r a
// return time: the first return of an operation that answered at revision r or later (the server had
// applied r by then). The rest keep returning at infinity. An answer at r or later before the write was
// even sent is a violation.
func boundUnknownReturns(ops []Op) ([]Op, []Violation) {
	c := capped{max: 5}
	answeredBy := firstAnswers(ops)
	out := append([]Op(nil), ops...)
	for i, op := range out {
		if !op.Output.Unknown || op.Output.Rev == 0 {
			continue
		}
		switch r := answeredBy(op.Output.Rev); {
		case r < op.Call:
			c.add(Violation{"history", fmt.Sprintf("%s is in the history at revision %d, but the server answered at that revision or later at %s, before it was sent",
				op, op.Output.Rev, ms(r))})
		case r < infinity:
			out[i].Return = r
		}
	}
	return out, c.all()
}

// checkLinearizability checks each key's history with Porcupine, stretch by stretch (see segments), within
// timeout for the whole; a stretch not decided in time is a failure of the test. The visualisation of a
// stretch that is not linearizable is written to dir.
func checkLinearizability(ops []Op, timeout time.Duration, dir string) ([]Violation, LinearizabilityResult) {
	t0 := time.Now()
	deadline := t0.Add(timeout)
	byKey := map[string][]Op{}
	for _, op := range ops {
		byKey[op.Input.Key] = append(byKey[op.Input.Key], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	res := LinearizabilityResult{Keys: len(keys), Operations: len(ops)}
	var violations []Violation
	type job struct {
		key   string
		index int
		seg   segment
	}
	var jobs []job
	for _, key := range keys {
		history := byKey[key]
		sort.SliceStable(history, func(i, j int) bool { return history[i].Call < history[j].Call })
		for i, seg := range segments(history, segmentSize) {
			jobs = append(jobs, job{key, i, seg})
			res.Largest = max(res.Largest, len(seg.ops))
		}
	}
	res.Segments = len(jobs)
	// Porcupine keeps a copy of the set of operations placed so far (a bit each) for every state it
	// reaches: about n²/8 bytes for a stretch of n operations, times one more for each operation of unknown
	// outcome that stays open to the end. A stretch over the budget is a failure of the test, not a crash.
	workers := max(1, min(runtime.NumCPU(), 4))
	var checkable []job
	for _, j := range jobs {
		open := 0
		for _, op := range j.seg.ops {
			if op.Return >= infinity {
				open++
			}
		}
		n := float64(len(j.seg.ops))
		need := n * n / 8 * float64(1+open)
		if need > float64(checkMemory) {
			violations = append(violations, Violation{"checker", fmt.Sprintf(
				"stretch %d of key %s is too long to check: %d operations, %d of them of unknown outcome that stay open, need about %.1f GB (the limit is %.1f GB); shorten the run",
				j.index, j.key, len(j.seg.ops), open, need/1e9, float64(checkMemory)/1e9)})
			continue
		}
		if need > float64(checkMemory)/float64(workers) {
			workers = 1
		}
		checkable = append(checkable, j)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan job)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				v, file := checkSegment(j.key, j.index, j.seg, time.Until(deadline), dir)
				mu.Lock()
				if v != nil {
					violations = append(violations, *v)
				}
				if file != "" {
					res.Files = append(res.Files, file)
				}
				mu.Unlock()
			}
		}()
	}
	for _, j := range checkable {
		work <- j
	}
	close(work)
	wg.Wait()
	sort.Slice(violations, func(i, j int) bool { return violations[i].Detail < violations[j].Detail })
	sort.Strings(res.Files)
	res.Elapsed = time.Since(t0)
	return violations, res
}

// segmentSize is the fewest operations of a stretch checked alone.
var segmentSize = 2000

// checkMemory is the memory, in bytes, Porcupine may take for the stretches it checks at once.
var checkMemory int64 = 4 << 30

// checkSegment checks one stretch of a key's history; an illegal one is checked again for its
// visualisation, written to dir.
func checkSegment(key string, index int, seg segment, timeout time.Duration, dir string) (*Violation, string) {
	if timeout <= 0 {
		return &Violation{"checker", fmt.Sprintf("no time left to check stretch %d of key %s (%d operations)", index, key, len(seg.ops))}, ""
	}
	model := modelFrom(seg.start)
	history := toPorcupine(seg.ops)
	switch porcupine.CheckOperationsTimeout(model, history, timeout) {
	case porcupine.Ok:
		return nil, ""
	case porcupine.Unknown:
		return &Violation{"checker", fmt.Sprintf("Porcupine did not decide on stretch %d of key %s (%d operations) in time",
			index, key, len(history))}, ""
	}
	detail := fmt.Sprintf("the history of key %s is not linearizable: its stretch %d (%d operations from %s, starting from %s)",
		key, index, len(history), ms(seg.ops[0].Call), seg.start)
	result, info := porcupine.CheckOperationsVerbose(model, history, timeout)
	file := ""
	if result == porcupine.Illegal {
		if dir != "" {
			path := filepath.Join(dir, fmt.Sprintf("linearizability-%s-%d.html", strings.ReplaceAll(key, "/", "_"), index))
			if err := porcupine.VisualizePath(model, info, path); err == nil {
				file = path
				detail += "; Porcupine's visualisation: " + path
			}
		}
		detail += longestPrefix(history, info)
	}
	return &Violation{"linearizability", detail}, file
}

// longestPrefix names where the longest linearizable prefix ends: the operations that could not be placed.
func longestPrefix(history []porcupine.Operation, info porcupine.LinearizationInfo) string {
	partials := info.PartialLinearizations()
	if len(partials) == 0 {
		return ""
	}
	longest := []int{}
	for _, p := range partials[0] {
		if len(p) > len(longest) {
			longest = p
		}
	}
	placed := map[int]bool{}
	var lastPlaced int64 = -1
	for _, i := range longest {
		placed[i] = true
		lastPlaced = max(lastPlaced, history[i].Call)
	}
	// The first operation (by invocation) that none of the longest linearizations could place.
	for i, op := range history {
		if !placed[i] && !op.Output.(Output).Unknown {
			o := Op{Client: op.ClientId, Input: op.Input.(Input), Output: op.Output.(Output), Call: op.Call, Return: op.Return}
			return fmt.Sprintf("; %d operations linearize, the first that does not fit is %s", len(longest), o)
		}
	}
	return fmt.Sprintf("; %d operations linearize", len(longest))
}

// plantStaleRead builds a known-bad history from a real one: a get that comes after two writes of its key
// that returned one after the other is made to return the state after the first of them. The checker must
// reject it; if it does not, it is vacuous. Returns the key's history and a description, or false if the
// history has no such pattern.
func plantStaleRead(ops []Op) ([]Op, string, bool) {
	byKey := map[string][]Op{}
	for _, op := range ops {
		byKey[op.Input.Key] = append(byKey[op.Input.Key], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		history := byKey[key]
		// gi: the last get whose result was a present key; w1, w2: acknowledged puts before it in real time,
		// w2 invoked after w1 returned.
		for gi := len(history) - 1; gi >= 0; gi-- {
			g := history[gi]
			if g.Input.Kind != Get || g.Output.Unknown || !g.Output.KV.Exists {
				continue
			}
			w2 := lastPutBefore(history, g.Call)
			if w2 == nil {
				continue
			}
			w1 := lastPutBefore(history, w2.Call)
			if w1 == nil {
				continue
			}
			bad := append([]Op(nil), history...)
			stale := KV{Exists: true, Value: w1.Input.Value, ModRev: w1.Output.Rev, Version: w1.Output.KV.Version + 1,
				CreateRev: w1.Output.KV.CreateRev}
			if !w1.Output.KV.Exists {
				stale.CreateRev = w1.Output.Rev
			}
			bad[gi].Output.KV = stale
			return bad, fmt.Sprintf("%s made to read %s, written by %s before %s", g, stale, w1, w2), true
		}
	}
	return nil, "", false
}

// checkCanary runs the checker on a planted stale read, as it runs on the real history: it must find it.
// lastPutBefore: of the acknowledged puts that returned before time t, the one invoked last; nil if none.
func lastPutBefore(history []Op, t int64) *Op {
	var last *Op
	for j := range history {
		o := &history[j]
		if o.Input.Kind == Put && !o.Output.Unknown && o.Return < t && (last == nil || o.Call > last.Call) {
			last = o
		}
	}
	return last
}

func checkCanary(ops []Op, timeout time.Duration) (string, []Violation) {
	bad, what, ok := plantStaleRead(ops)
	if !ok {
		return "no pattern to plant a stale read in (too few writes)", nil
	}
	vs, _ := checkLinearizability(bad, timeout, "")
	for _, v := range vs {
		if v.Kind == "checker" {
			return "", []Violation{{"checker", "the check of a history with a planted stale read: " + v.Detail}}
		}
	}
	if len(vs) == 0 {
		return "", []Violation{{"checker", "the checker accepts a history with a planted stale read, so it proves nothing: " + what}}
	}
	return "a stale read planted in the history is rejected", nil
}

// writeOps writes the history as text, one operation a line, for a look after a failure.
func writeOps(path string, ops []Op) error {
	var b strings.Builder
	for _, op := range ops {
		b.WriteString(op.Input.Key + "\t" + op.String() + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
