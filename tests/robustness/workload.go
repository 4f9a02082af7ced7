package main

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

const (
	kvPrefix    = "rb/k"
	leasePrefix = "rb/lease/"
	watchPrefix = "rb/"
)

// newClient connects to the server with short dial and reconnection delays, so that clients are back soon
// after a restart.
func newClient(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
}

func toKV(kv *mvccpb.KeyValue) KV {
	if kv == nil {
		return KV{}
	}
	return KV{Exists: true, Value: string(kv.Value), ModRev: kv.ModRevision, CreateRev: kv.CreateRevision, Version: kv.Version}
}

func toEvent(ev *clientv3.Event) Event {
	e := Event{Rev: ev.Kv.ModRevision, Key: string(ev.Kv.Key), Delete: ev.Type == clientv3.EventTypeDelete}
	if !e.Delete {
		e.Value, e.ModRev, e.CreateRev, e.Version = string(ev.Kv.Value), ev.Kv.ModRevision, ev.Kv.CreateRevision, ev.Kv.Version
	}
	return e
}

// Restarts is what the driver did to the server, shared with the checks that depend on it.
type Restarts struct {
	mu     sync.Mutex
	kills  []int64 // times of the kills
	readys []int64 // times at which the server answered again after each kill
}

func (r *Restarts) killed(at int64) {
	r.mu.Lock()
	r.kills = append(r.kills, at)
	r.mu.Unlock()
}

func (r *Restarts) ready(at int64) {
	r.mu.Lock()
	r.readys = append(r.readys, at)
	r.mu.Unlock()
}

// lastReadyBetween is the last time, in (after, before], at which the server answered after a restart; 0 if
// none.
func (r *Restarts) lastReadyBetween(after, before int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var last int64
	for _, t := range r.readys {
		if t > after && t <= before && t > last {
			last = t
		}
	}
	return last
}

// killedBetween tells whether a kill happened in (from, to].
func (r *Restarts) killedBetween(from, to int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.kills {
		if k > from && k <= to {
			return true
		}
	}
	return false
}

func (r *Restarts) snapshot() ([]int64, []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.kills...), append([]int64(nil), r.readys...)
}

// Workload runs the clients against the server.
type Workload struct {
	endpoint  string
	rec       *Recorder
	restarts  *Restarts
	keys      []string
	opTimeout time.Duration
	leaseTTL  int64
	slack     time.Duration

	failed   int // reads that failed (no effect: left out of the history)
	failedMu sync.Mutex

	leases *LeaseBook
}

func (w *Workload) addFailed() {
	w.failedMu.Lock()
	w.failed++
	w.failedMu.Unlock()
}

// kvClient runs puts, gets, deletes and compare-and-set transactions on the few keys until ctx ends. After
// an error it only reads until a read succeeds again, so that a server that is down costs few unknown
// outcomes.
func (w *Workload) kvClient(ctx context.Context, id int, cli *clientv3.Client, rng *rand.Rand) {
	seen := map[string]KV{} // the last state of each key this client saw
	seq := 0
	readOnly := false
	for ctx.Err() == nil {
		key := w.keys[rng.Intn(len(w.keys))]
		in := Input{Key: key, Kind: Get}
		if !readOnly {
			switch p := rng.Intn(100); {
			case p < 35:
				in.Kind = Get
			case p < 60:
				in.Kind = Put
			case p < 70:
				in.Kind = Delete
			default:
				in.Kind = Txn
				last := seen[key]
				if p < 85 {
					in.Compare, in.Expected = CompareValue, last.Value
				} else {
					in.Compare, in.ExpectedRev = CompareModRev, last.ModRev
				}
			}
		}
		if in.Kind == Put || in.Kind == Txn {
			seq++
			in.Value = fmt.Sprintf("c%d-%d", id, seq)
		}
		op := w.do(cli, id, in)
		if op.Output.Unknown {
			if in.Kind == Get {
				w.addFailed()
			} else {
				w.rec.Add(op)
			}
			readOnly = true
			time.Sleep(20 * time.Millisecond)
			continue
		}
		w.rec.Add(op)
		readOnly = false
		switch {
		case in.Kind == Get || in.Kind == Txn && !op.Output.Succeeded:
			seen[key] = op.Output.KV
		case in.Kind == Put || in.Kind == Txn:
			prev := seen[key]
			seen[key] = KV{Exists: true, Value: in.Value, ModRev: op.Output.Rev, Version: prev.Version + 1}
		case in.Kind == Delete:
			seen[key] = KV{}
		}
	}
}

// do runs one operation and records its times; an error makes its outcome unknown.
func (w *Workload) do(cli *clientv3.Client, id int, in Input) Op {
	op := Op{Client: id, Input: in, Call: w.rec.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), w.opTimeout)
	defer cancel()
	var err error
	out := Output{}
	switch in.Kind {
	case Get:
		var resp *clientv3.GetResponse
		if resp, err = cli.Get(ctx, in.Key); err == nil {
			out.Rev = resp.Header.Revision
			if len(resp.Kvs) > 0 {
				out.KV = toKV(resp.Kvs[0])
			}
		}
	case Put:
		var resp *clientv3.PutResponse
		if resp, err = cli.Put(ctx, in.Key, in.Value, clientv3.WithPrevKV()); err == nil {
			out.Rev, out.KV = resp.Header.Revision, toKV(resp.PrevKv)
		}
	case Delete:
		var resp *clientv3.DeleteResponse
		if resp, err = cli.Delete(ctx, in.Key, clientv3.WithPrevKV()); err == nil {
			out.Rev, out.Deleted = resp.Header.Revision, resp.Deleted
			if len(resp.PrevKvs) > 0 {
				out.KV = toKV(resp.PrevKvs[0])
			}
		}
	case Txn:
		cmp := clientv3.Compare(clientv3.Value(in.Key), "=", in.Expected)
		if in.Compare == CompareModRev {
			cmp = clientv3.Compare(clientv3.ModRevision(in.Key), "=", in.ExpectedRev)
		}
		var resp *clientv3.TxnResponse
		resp, err = cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(in.Key, in.Value)).Else(clientv3.OpGet(in.Key)).Commit()
		if err == nil {
			out.Rev, out.Succeeded = resp.Header.Revision, resp.Succeeded
			if !resp.Succeeded && len(resp.Responses) == 1 {
				if r := resp.Responses[0].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
					out.KV = toKV(r.Kvs[0])
				}
			}
		}
	}
	op.Return = w.rec.Now()
	if err != nil {
		out = Output{Unknown: true}
		op.Return = infinity
	}
	op.Output = out
	return op
}

// Lease is one lease of the workload and what became of it.
type Lease struct {
	ID       clientv3.LeaseID
	TTL      int64
	Keys     []string
	Stopped  int64            // the last moment a grant or keep-alive of it may have reached the server
	LastAck  int64            // the call of the last acknowledged grant or keep-alive: its keys stay until LastAck+TTL
	Written  map[string]bool  // keys whose put was acknowledged
	Revoked  int64            // the revoke was acknowledged at this time (0: not revoked)
	Expiry   int64            // when all its keys were seen gone (0: not yet)
	GoneSeen map[string]int64 // when each key was first seen gone
	Reported map[string]bool  // keys with a violation reported
}

// LeaseBook holds the leases whose keep-alives stopped, and checks their keys as time passes.
type LeaseBook struct {
	mu         sync.Mutex
	pending    []*Lease // keys still to be seen gone
	done       []*Lease
	granted    int
	revoked    int
	lapsed     int
	violations []Violation
	latencies  []time.Duration // from LastAck+TTL to the keys being seen gone (lapsed leases, no kill between)
}

func (b *LeaseBook) add(l *Lease) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l.Revoked > 0 {
		b.revoked++
	} else {
		b.lapsed++
	}
	b.pending = append(b.pending, l)
}

func (b *LeaseBook) violate(v Violation) {
	b.mu.Lock()
	b.violations = append(b.violations, v)
	b.mu.Unlock()
}

// deadline is the time by which the keys of a lease must be gone, given the restarts known up to now: a
// restart gives a lease a fresh TTL, as etcd does.
func leaseDeadline(l *Lease, restarts *Restarts, now int64, slack time.Duration) int64 {
	if l.Revoked > 0 {
		return l.Revoked
	}
	from := l.Stopped
	if r := restarts.lastReadyBetween(l.Stopped, now); r > from {
		from = r
	}
	return from + l.TTL*int64(time.Second) + int64(slack)
}

// leaseClient grants leases, attaches keys to them, keeps some alive for a while, revokes some and lets
// the others lapse, until ctx ends.
func (w *Workload) leaseClient(ctx context.Context, id int, cli *clientv3.Client, rng *rand.Rand) {
	n := 0
	for ctx.Err() == nil {
		n++
		call := w.rec.Now()
		gctx, cancel := context.WithTimeout(context.Background(), w.opTimeout)
		grant, err := cli.Grant(gctx, w.leaseTTL)
		cancel()
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		l := &Lease{ID: grant.ID, TTL: max(w.leaseTTL, grant.TTL), Stopped: w.rec.Now(), LastAck: call,
			GoneSeen: map[string]int64{}, Written: map[string]bool{}, Reported: map[string]bool{}}
		w.leases.mu.Lock()
		w.leases.granted++
		w.leases.mu.Unlock()
		for i := 0; i < 1+rng.Intn(2); i++ {
			key := fmt.Sprintf("%s%d-%d-%d", leasePrefix, id, n, i)
			pctx, cancel := context.WithTimeout(context.Background(), w.opTimeout)
			_, err := cli.Put(pctx, key, "x", clientv3.WithLease(grant.ID))
			cancel()
			// Whether or not it was written, the key must not outlive its lease.
			l.Keys = append(l.Keys, key)
			if err != nil {
				break
			}
			l.Written[key] = true
		}
		fate := rng.Intn(10)
		if fate >= 3 { // keep alive for a while
			until := time.Now().Add(time.Duration(rng.Intn(2000)) * time.Millisecond)
			for time.Now().Before(until) && ctx.Err() == nil {
				kctx, cancel := context.WithTimeout(context.Background(), w.opTimeout)
				call := w.rec.Now()
				if _, err := cli.KeepAliveOnce(kctx, grant.ID); err == nil {
					l.LastAck = call
				}
				cancel()
				l.Stopped = w.rec.Now()
				time.Sleep(300 * time.Millisecond)
			}
		}
		if fate >= 7 { // revoke
			rctx, cancel := context.WithTimeout(context.Background(), w.opTimeout)
			_, err := cli.Revoke(rctx, grant.ID)
			cancel()
			now := w.rec.Now()
			if err == nil {
				l.Revoked = now
			} else {
				l.Stopped = now // unknown: it lapses at the latest
			}
		}
		w.leases.add(l)
		time.Sleep(time.Duration(rng.Intn(300)) * time.Millisecond)
	}
}

// observeLeaseKey judges one read of a key of a lease whose keep-alives stopped, invoked at call and
// returned at ret: a key still there past the lease's deadline, back after it was seen gone, or gone before
// the lease's TTL ran out is a violation (each reported once).
func observeLeaseKey(l *Lease, key string, present bool, call, ret int64, restarts *Restarts, slack time.Duration) *Violation {
	seen, gone := l.GoneSeen[key]
	switch {
	case !present && !gone:
		l.GoneSeen[key] = ret
		if early := l.LastAck + l.TTL*int64(time.Second); l.Revoked == 0 && l.Written[key] && ret < early {
			return &Violation{"lease", fmt.Sprintf("key %s of lease %x was gone at %s, before its TTL of %ds after the "+
				"last acknowledged keep-alive (sent at %s) ran out", key, int64(l.ID), ms(ret), l.TTL, ms(l.LastAck))}
		}
	case present && gone && seen < call && !l.Reported[key]:
		l.Reported[key] = true
		return &Violation{"lease", fmt.Sprintf("key %s of lease %x came back: it was seen gone at %s and is there again at %s",
			key, int64(l.ID), ms(seen), ms(call))}
	case present && !gone && !l.Reported[key]:
		if deadline := leaseDeadline(l, restarts, call, slack); call >= deadline {
			l.Reported[key] = true
			what := fmt.Sprintf("its keep-alives stopped at %s, TTL %ds", ms(l.Stopped), l.TTL)
			if l.Revoked > 0 {
				what = fmt.Sprintf("it was revoked at %s", ms(l.Revoked))
			}
			return &Violation{"lease", fmt.Sprintf("key %s of lease %x is still there at %s, past its deadline %s: %s",
				key, int64(l.ID), ms(call), ms(deadline), what)}
		}
	}
	return nil
}

// settled tells whether every key of a lease was seen gone (or reported).
func (l *Lease) settled() bool {
	for _, key := range l.Keys {
		if _, gone := l.GoneSeen[key]; !gone && !l.Reported[key] {
			return false
		}
	}
	return true
}

// leaseChecker reads the keys of leases whose keep-alives stopped: each must be gone by its deadline, and
// once seen gone must stay gone, after restarts too. It runs until ctx ends and then until every lease
// was checked.
func (w *Workload) leaseChecker(ctx context.Context, cli *clientv3.Client) {
	lastCheckedRestart := 0
	b := w.leases
	for {
		time.Sleep(100 * time.Millisecond)
		now := w.rec.Now()
		b.mu.Lock()
		pending := append([]*Lease(nil), b.pending...)
		done := append([]*Lease(nil), b.done...)
		b.mu.Unlock()
		if ctx.Err() != nil && len(pending) == 0 {
			return
		}
		var stillPending []*Lease
		for _, l := range pending {
			// Reads start a little before the TTL runs out, to see a lease that goes too early.
			if l.Revoked == 0 && now < l.Stopped+l.TTL*int64(time.Second)-int64(500*time.Millisecond) {
				stillPending = append(stillPending, l)
				continue
			}
			for _, key := range l.Keys {
				if _, gone := l.GoneSeen[key]; gone || l.Reported[key] {
					continue
				}
				call := w.rec.Now()
				present, ok := w.readKey(cli, key)
				if ok {
					if v := observeLeaseKey(l, key, present, call, w.rec.Now(), w.restarts, w.slack); v != nil {
						b.violate(*v)
					}
				}
			}
			if !l.settled() {
				stillPending = append(stillPending, l)
				continue
			}
			for _, t := range l.GoneSeen {
				l.Expiry = max(l.Expiry, t)
			}
			b.mu.Lock()
			b.done = append(b.done, l)
			if l.Revoked == 0 && len(l.GoneSeen) > 0 && !w.restarts.killedBetween(l.LastAck, l.Expiry) {
				b.latencies = append(b.latencies, time.Duration(l.Expiry-(l.LastAck+l.TTL*int64(time.Second))))
			}
			b.mu.Unlock()
		}
		b.mu.Lock()
		// Leases added while this pass ran stay pending.
		b.pending = append(stillPending, b.pending[len(pending):]...)
		b.mu.Unlock()
		// After a restart, the keys seen gone must still be gone.
		_, readys := w.restarts.snapshot()
		if len(readys) > lastCheckedRestart && w.checkLeaseKeys(cli, done) {
			lastCheckedRestart = len(readys)
		}
	}
}

// checkLeaseKeys reads every key of the leases at once and judges each; false if the server could not be
// read.
func (w *Workload) checkLeaseKeys(cli *clientv3.Client, leases []*Lease) bool {
	call := w.rec.Now()
	present, err := w.leaseKeys(cli)
	if err != nil {
		return false
	}
	ret := w.rec.Now()
	for _, l := range leases {
		for _, key := range l.Keys {
			if v := observeLeaseKey(l, key, present[key], call, ret, w.restarts, w.slack); v != nil {
				w.leases.violate(*v)
			}
		}
	}
	return true
}

func (w *Workload) readKey(cli *clientv3.Client, key string) (present, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), w.opTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return false, false
	}
	return len(resp.Kvs) > 0, true
}

// Watcher watches the workload's prefix from a revision and records every event.
type Watcher struct {
	ID        int
	Start     int64 // the first revision asked for
	Events    []Event
	Resumed   int   // times the watch was opened again by this program (the client library resumes on its own too)
	Compacted int64 // the watch's start was compacted: the compact revision
	Err       string
	Recv      []int64      // when each event arrived
	clock     func() int64 // the run's clock
}

// Spanned counts the restarts the watch went on across: events arrived before the kill and after the
// server was back.
func (w *Watcher) Spanned(kills, readys []int64) int {
	n := 0
	for i, k := range kills {
		if i >= len(readys) {
			break
		}
		before, after := false, false
		for _, t := range w.Recv {
			before = before || t < k
			after = after || t > readys[i]
		}
		if before && after {
			n++
		}
	}
	return n
}

// run watches until stop is closed and then until it saw the final revision (finalRev, once known), or
// for limit at most.
func (w *Watcher) run(stop <-chan struct{}, cli *clientv3.Client, finalRev func() int64, limit time.Duration) {
	next := w.Start
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := cli.Watch(ctx, watchPrefix, clientv3.WithPrefix(), clientv3.WithRev(next))
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var deadline <-chan time.Time
	stopped := false
	for {
		select {
		case resp, ok := <-ch:
			if !ok {
				// Closed (the client library resumes by itself after a disconnect; this is anything else).
				w.Resumed++
				time.Sleep(50 * time.Millisecond)
				ch = cli.Watch(ctx, watchPrefix, clientv3.WithPrefix(), clientv3.WithRev(next))
				continue
			}
			if resp.CompactRevision != 0 {
				w.Compacted = resp.CompactRevision
				return
			}
			if err := resp.Err(); err != nil {
				w.Err = err.Error()
			}
			for _, ev := range resp.Events {
				e := toEvent(ev)
				w.Events = append(w.Events, e)
				w.Recv = append(w.Recv, w.clock())
				next = e.Rev + 1
			}
		case <-stop:
			stop, stopped = nil, true
			deadline = time.After(limit)
		case <-deadline:
			return
		case <-tick.C:
		}
		if f := finalRev(); stopped && f > 0 && next > f {
			return
		}
	}
}

// readHistory reads every event of the workload's prefix from revision 1 to until: the reference history.
// It waits as long as events keep coming, and gives up after stall without any.
func readHistory(endpoint string, until int64, stall time.Duration) ([]Event, int64, error) {
	cli, err := newClient(endpoint)
	if err != nil {
		return nil, 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var events []Event
	last := func() int64 {
		if len(events) == 0 {
			return 0
		}
		return events[len(events)-1].Rev
	}
	timer := time.NewTimer(stall)
	defer timer.Stop()
	ch := cli.Watch(ctx, watchPrefix, clientv3.WithPrefix(), clientv3.WithRev(1))
	for {
		select {
		case resp, ok := <-ch:
			if !ok {
				return events, 0, fmt.Errorf("the watch of the history from revision 1 closed at revision %d, before the final revision %d", last(), until)
			}
			if resp.CompactRevision != 0 {
				return nil, resp.CompactRevision, nil
			}
			if err := resp.Err(); err != nil {
				return events, 0, err
			}
			for _, ev := range resp.Events {
				events = append(events, toEvent(ev))
			}
			if last() >= until {
				return events, 0, nil
			}
			timer.Reset(stall)
		case <-timer.C:
			return events, 0, fmt.Errorf("the watch of the history from revision 1 stalled at revision %d for %s, before the final revision %d",
				last(), stall, until)
		}
	}
}

// finalReads reads every key after the last restart, as operations of the history, and returns the
// highest revision they saw.
func (w *Workload) finalReads(cli *clientv3.Client, client int) (finalRev int64, err error) {
	for attempt := 0; ; attempt++ {
		ok := true
		for _, key := range w.keys {
			op := w.do(cli, client, Input{Kind: Get, Key: key})
			if op.Output.Unknown {
				ok = false
				break
			}
			w.rec.Add(op)
			finalRev = max(finalRev, op.Output.Rev)
		}
		if ok {
			return finalRev, nil
		}
		if attempt == 20 {
			return 0, fmt.Errorf("the final reads fail")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// leaseKeys reads which keys of leases are there.
func (w *Workload) leaseKeys(cli *clientv3.Client) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), w.opTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, leasePrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for _, kv := range resp.Kvs {
		keys[string(kv.Key)] = true
	}
	return keys, nil
}
