// Command robustness runs the configuration database (the platform's embedded server, or etcd) as a child
// process, kills it with SIGKILL at random moments and starts it again on the same data, while clients put,
// read, delete, compare-and-set, grant leases and watch; then it checks what they saw: each key's history is
// linearizable (Porcupine, with a model of etcd's key-value semantics), no acknowledged write is lost,
// revisions never go backwards, each watch gets every event once and in order across restarts, and the keys
// of a lease whose keep-alives stopped are gone in time and stay gone. It prints a summary whose last line
// counts the violations, and exits 1 on any (2 when the test itself could not run).
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type options struct {
	server       string
	binary       string
	duration     time.Duration
	kills        int
	clients      int
	leaseClients int
	watchers     int
	keys         int
	opTimeout    time.Duration
	leaseTTL     int64
	leaseSlack   time.Duration
	checkTimeout time.Duration
	maxUnknown   float64
	minOK        int
	workdir      string
	keep         bool
	seed         int64
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.server, "server", "sdp", "the server under test: sdp (the platform's embedded server) or etcd")
	flag.StringVar(&o.binary, "binary", "", "its executable (default: target/debug/sdp for sdp, etcd on PATH for etcd)")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "how long the clients run")
	flag.IntVar(&o.kills, "kills", 3, "how many times the server is killed with SIGKILL and started again")
	flag.IntVar(&o.clients, "clients", 6, "key-value clients")
	flag.IntVar(&o.leaseClients, "lease-clients", 2, "lease clients")
	flag.IntVar(&o.watchers, "watchers", 2, "watchers")
	flag.IntVar(&o.keys, "keys", 8, "keys the key-value clients share")
	flag.DurationVar(&o.opTimeout, "op-timeout", 2*time.Second, "timeout of one operation (its outcome is then unknown)")
	flag.Int64Var(&o.leaseTTL, "lease-ttl", 3, "TTL of the leases, in seconds")
	flag.DurationVar(&o.leaseSlack, "lease-slack", 4*time.Second, "how late past its TTL (counted from the last keep-alive or restart) a lease's keys may go")
	flag.DurationVar(&o.checkTimeout, "check-timeout", 2*time.Minute, "time Porcupine has to decide; undecided is a failure")
	flag.Int64Var(&checkMemory, "check-memory", checkMemory, "bytes Porcupine may use at once; a stretch of history that would need more fails the run")
	flag.Float64Var(&o.maxUnknown, "max-unknown", 0.25, "largest share of operations with unknown outcomes for the check to mean something")
	flag.IntVar(&o.minOK, "min-ok", 100, "fewest acknowledged operations for the check to mean something")
	flag.StringVar(&o.workdir, "workdir", "", "folder for the data, the server's log and the findings (default: a new temporary one, removed when the run passes)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work folder when the run passes")
	flag.Int64Var(&o.seed, "seed", 0, "random seed (default: from the clock)")
	flag.Parse()
	if o.server != "sdp" && o.server != "etcd" {
		fmt.Fprintln(os.Stderr, "--server is sdp or etcd")
		os.Exit(2)
	}
	if o.binary == "" {
		o.binary = map[string]string{"sdp": "target/debug/sdp", "etcd": "etcd"}[o.server]
	}
	if o.seed == 0 {
		o.seed = time.Now().UnixNano()
	}
	return o
}

func main() {
	o := parseFlags()
	os.Exit(run(o))
}

func run(o options) int {
	name := fmt.Sprintf("robustness (%s)", o.server)
	fail := func(format string, args ...any) int {
		fmt.Printf("%s: could not run: %s\n", name, fmt.Sprintf(format, args...))
		return 2
	}
	binary := o.binary
	if !strings.Contains(binary, "/") {
		if p, err := lookPath(binary); err == nil {
			binary = p
		} else {
			return fail("%s not found on PATH", binary)
		}
	} else if abs, err := filepath.Abs(binary); err == nil {
		binary = abs
	}
	if _, err := os.Stat(binary); err != nil {
		return fail("%v", err)
	}
	workdir := o.workdir
	if workdir == "" {
		d, err := os.MkdirTemp("", "sdp-robustness-")
		if err != nil {
			return fail("%v", err)
		}
		workdir = d
	} else if err := os.MkdirAll(workdir, 0o755); err != nil {
		return fail("%v", err)
	}
	workdir, _ = filepath.Abs(workdir)
	dataDir := filepath.Join(workdir, "data")
	port, err1 := freePort()
	peerPort, err2 := freePort()
	if err1 != nil || err2 != nil {
		return fail("no free port: %v %v", err1, err2)
	}
	server := &Server{kind: o.server, binary: binary, port: port, peerPort: peerPort, dataDir: dataDir,
		logPath: filepath.Join(workdir, "server.log")}
	// The server dies with this program on every way out: returns, signals (here), panics and anything else
	// (the parent-death signal).
	defer server.Kill()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-signals
		server.Kill()
		fmt.Printf("%s: stopped by %s\n", name, s)
		os.Exit(128 + int(s.(syscall.Signal)))
	}()

	what := binary
	if o.server == "sdp" {
		what += " config-db"
	}
	fmt.Printf("%s: %s on %s, data in %s, seed %d\n", name, what, server.Endpoint(), dataDir, o.seed)
	if _, err := server.Start(60 * time.Second); err != nil {
		return fail("%v", err)
	}

	rec := NewRecorder()
	restarts := &Restarts{}
	keys := make([]string, o.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%d", kvPrefix, i)
	}
	w := &Workload{endpoint: server.Endpoint(), rec: rec, restarts: restarts, keys: keys, opTimeout: o.opTimeout,
		leaseTTL: o.leaseTTL, slack: o.leaseSlack, leases: &LeaseBook{}}
	var clients []*clientv3.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	connect := func() *clientv3.Client {
		c, err := newClient(server.Endpoint())
		if err != nil {
			return nil
		}
		clients = append(clients, c)
		return c
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	rng := rand.New(rand.NewSource(o.seed))
	var wg sync.WaitGroup
	for i := 0; i < o.clients; i++ {
		c := connect()
		if c == nil {
			return fail("cannot connect to %s", server.Endpoint())
		}
		r := rand.New(rand.NewSource(rng.Int63()))
		wg.Add(1)
		go func(i int) { defer wg.Done(); w.kvClient(ctx, i, c, r) }(i)
	}
	var leaseWG sync.WaitGroup
	for i := 0; i < o.leaseClients; i++ {
		c := connect()
		if c == nil {
			return fail("cannot connect to %s", server.Endpoint())
		}
		r := rand.New(rand.NewSource(rng.Int63()))
		leaseWG.Add(1)
		go func(i int) { defer leaseWG.Done(); w.leaseClient(ctx, i, c, r) }(i)
	}
	leaseCheckerDone := make(chan struct{})
	if o.leaseClients > 0 {
		c := connect()
		if c == nil {
			return fail("cannot connect to %s", server.Endpoint())
		}
		checkerCtx, stopChecker := context.WithCancel(context.Background())
		go func() { leaseWG.Wait(); stopChecker() }()
		go func() { defer close(leaseCheckerDone); w.leaseChecker(checkerCtx, c) }()
	} else {
		close(leaseCheckerDone)
	}
	var finalRev atomic.Int64
	watchers := make([]*Watcher, o.watchers)
	var watchWG sync.WaitGroup
	for i := range watchers {
		c := connect()
		if c == nil {
			return fail("cannot connect to %s", server.Endpoint())
		}
		watchers[i] = &Watcher{ID: i, Start: 1, clock: rec.Now}
		delay := time.Duration(i) * o.duration / time.Duration(2*max(1, o.watchers-1)+1)
		watchWG.Add(1)
		go func(wt *Watcher) {
			defer watchWG.Done()
			if delay > 0 {
				// A later watcher starts from the revision of its time.
				time.Sleep(delay)
				for ctx.Err() == nil {
					rctx, cancel := context.WithTimeout(context.Background(), o.opTimeout)
					resp, err := c.Get(rctx, "health")
					cancel()
					if err == nil {
						wt.Start = resp.Header.Revision + 1
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			wt.run(ctx.Done(), c, finalRev.Load, 20*time.Second)
		}(watchers[i])
	}

	// The kills: one at a random moment in each of kills equal slots of the run.
	var restartTimes []time.Duration
	var driverErr error
	driverDone := make(chan struct{})
	go func() {
		defer close(driverDone)
		if o.kills == 0 {
			return
		}
		slot := o.duration / time.Duration(o.kills)
		for i := 0; i < o.kills; i++ {
			at := time.Duration(i)*slot + time.Duration((0.2+0.6*rng.Float64())*float64(slot))
			if d := at - time.Duration(rec.Now()); d > 0 {
				time.Sleep(d)
			}
			server.Kill()
			restarts.killed(rec.Now())
			time.Sleep(time.Duration(rng.Intn(200)) * time.Millisecond)
			took, err := server.Start(60 * time.Second)
			if err != nil {
				driverErr = err
				return
			}
			restarts.ready(rec.Now())
			restartTimes = append(restartTimes, took)
		}
	}()

	<-ctx.Done()
	wg.Wait()
	<-driverDone
	runTime := time.Duration(rec.Now())
	if driverErr != nil {
		return fail("restart: %v", driverErr)
	}
	// The lease checker goes on until the last leases' deadlines have passed; the final reads come after it,
	// when nothing writes any more.
	select {
	case <-leaseCheckerDone:
	case <-time.After(time.Duration(o.leaseTTL)*time.Second + o.leaseSlack + 30*time.Second):
	}
	final := connect()
	if final == nil {
		return fail("cannot connect to %s after the run", server.Endpoint())
	}
	rev, err := w.finalReads(final, o.clients)
	if err != nil {
		return fail("%v (server log: %s)", err, server.logPath)
	}
	finalRev.Store(rev)
	watchWG.Wait()
	// Every key of every lease is gone at the end, and stays gone.
	w.leases.mu.Lock()
	allLeases := append(append([]*Lease(nil), w.leases.done...), w.leases.pending...)
	w.leases.mu.Unlock()
	if !w.checkLeaseKeys(final, allLeases) {
		return fail("the final read of the lease keys failed (server log: %s)", server.logPath)
	}
	events, compacted, historyErr := readHistory(server.Endpoint(), rev, 15*time.Second)
	server.Kill()
	checkStart := time.Now()

	// The checks.
	var violations []Violation
	ops := rec.Operations()
	kills, readys := restarts.snapshot()
	violations = append(violations, checkRevisions(ops, kills)...)
	source := "read from revision 1 at the end"
	if historyErr != nil {
		violations = append(violations, Violation{"history", historyErr.Error()})
	}
	if (historyErr != nil || compacted != 0) && len(watchers) > 0 && watchers[0].Start == 1 && watchers[0].Compacted == 0 {
		// The server compacted its old revisions (the embedded one does past 100,000), or the history could
		// not be read: the history is the events watcher 0 got from revision 1 during the run, checked as the
		// read one would be (a gap in it, or an acknowledged write missing from it, is a violation all the
		// same).
		why := fmt.Sprintf("the server compacted revisions before %d", compacted)
		if historyErr != nil {
			why = "the history could not be read at the end"
		}
		source = "as watcher 0 got it from revision 1 during the run (" + why + ")"
		events, compacted, historyErr = watchers[0].Events, 0, nil
	}
	complete := historyErr == nil && compacted == 0 && len(events) > 0
	var hres HistoryResult
	checked := ops
	var notes []string
	if complete {
		hv, r := checkHistory(ops, NewHistory(events))
		violations = append(violations, hv...)
		var bv []Violation
		checked, bv = boundUnknownReturns(r.Resolved)
		hres = r
		violations = append(violations, bv...)
		notes = append(notes, fmt.Sprintf("history: %d events up to revision %d, %s; %d acknowledged writes and %d reads checked against it",
			len(events), rev, source, r.CheckedWrites, r.CheckedReads))
	} else {
		why := "it was compacted at revision " + fmt.Sprint(compacted)
		if historyErr != nil {
			why = historyErr.Error()
		}
		notes = append(notes, "history: not read from revision 1 ("+why+"): watches checked against the acknowledged writes")
	}
	lv, lres := checkLinearizability(checked, o.checkTimeout, workdir)
	violations = append(violations, lv...)
	canary, cv := checkCanary(checked, o.checkTimeout)
	violations = append(violations, cv...)
	reference := events
	if !complete {
		reference = acknowledgedEvents(ops)
	}
	var watchNotes []string
	for _, wt := range watchers {
		violations = append(violations, checkWatch(wt, reference, complete, rev)...)
		if wt.Compacted != 0 {
			watchNotes = append(watchNotes, fmt.Sprintf("watcher %d: compacted at %d", wt.ID, wt.Compacted))
			continue
		}
		note := fmt.Sprintf("watcher %d from revision %d: %d events, on across %d restarts, reopened %d times",
			wt.ID, wt.Start, len(wt.Events), wt.Spanned(kills, readys), wt.Resumed)
		if wt.Err != "" {
			note += " (last error: " + wt.Err + ")"
		}
		watchNotes = append(watchNotes, note)
	}
	w.leases.mu.Lock()
	violations = append(violations, w.leases.violations...)
	lb := w.leases
	w.leases.mu.Unlock()

	// The figures.
	var ok, unknown int
	kinds := map[Kind][2]int{}
	for _, op := range ops {
		k := kinds[op.Input.Kind]
		if op.Output.Unknown {
			unknown++
			k[1]++
		} else {
			ok++
			k[0]++
		}
		kinds[op.Input.Kind] = k
	}
	total := ok + unknown + w.failed
	unknownRatio := float64(unknown) / float64(max(1, ok+unknown))
	if unknownRatio > o.maxUnknown {
		violations = append(violations, Violation{"checker", fmt.Sprintf(
			"%.1f%% of the operations have unknown outcomes (limit %.0f%%): too many for the check to mean something",
			100*unknownRatio, 100*o.maxUnknown)})
	}
	if ok < o.minOK {
		violations = append(violations, Violation{"checker", fmt.Sprintf("only %d acknowledged operations (at least %d needed)", ok, o.minOK)})
	}
	if len(kills) < o.kills {
		violations = append(violations, Violation{"checker", fmt.Sprintf("only %d of %d kills happened", len(kills), o.kills)})
	}

	fmt.Printf("  workload: %s, %d key-value clients on %d keys, %d lease clients, %d watchers, operation timeout %s\n",
		runTime.Round(time.Millisecond), o.clients, o.keys, o.leaseClients, o.watchers, o.opTimeout)
	var killTexts []string
	for i, k := range kills {
		t := ms(k)
		if i < len(readys) {
			t += fmt.Sprintf(" (back at %s)", ms(readys[i]))
		}
		killTexts = append(killTexts, t)
	}
	fmt.Printf("  kills: %d: %s\n", len(kills), strings.Join(killTexts, ", "))
	if len(restartTimes) > 0 {
		var sum, top time.Duration
		for _, d := range restartTimes {
			sum += d
			top = max(top, d)
		}
		fmt.Printf("  restarts: start to first answered read %s on average, %s at most\n",
			(sum / time.Duration(len(restartTimes))).Round(time.Millisecond), top.Round(time.Millisecond))
	}
	var kindTexts []string
	for _, k := range []Kind{Get, Put, Delete, Txn} {
		kindTexts = append(kindTexts, fmt.Sprintf("%s %d ok/%d unknown", k, kinds[k][0], kinds[k][1]))
	}
	// Throughput over the run, in tenths: a server that slows down as its data grows shows here.
	var tenths [10]int
	for _, op := range ops {
		if i := int(op.Call * 10 / max(1, int64(runTime))); !op.Output.Unknown && i >= 0 && i < 10 {
			tenths[i]++
		}
	}
	var rates []string
	for _, n := range tenths {
		rates = append(rates, fmt.Sprint(int(float64(n)/(runTime.Seconds()/10))))
	}
	fmt.Printf("  acknowledged operations per second, by tenth of the run: %s\n", strings.Join(rates, " "))
	fmt.Printf("  operations: %s; %d reads failed (left out); unknown outcomes %.1f%% of the recorded operations\n",
		strings.Join(kindTexts, ", "), w.failed, 100*unknownRatio)
	if complete {
		fmt.Printf("  unknown outcomes settled by the history: %d applied, %d not applied (left out), %d still unknown\n",
			hres.Applied, hres.NotApplied, unknown-hres.Applied-hres.NotApplied)
	}
	for _, n := range notes {
		fmt.Println("  " + n)
	}
	fmt.Printf("  linearizability: %d operations on %d keys (%d stretches, the largest %d operations) checked by Porcupine in %s; canary: %s\n",
		lres.Operations, lres.Keys, lres.Segments, lres.Largest, lres.Elapsed.Round(time.Millisecond), canary)
	fmt.Printf("  watches: %s\n", strings.Join(watchNotes, "; "))
	var lat []time.Duration
	lat = append(lat, lb.latencies...)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	latText := ""
	if len(lat) > 0 {
		latText = fmt.Sprintf("; keys of lapsed leases seen gone %s to %s after the TTL from their last acknowledged keep-alive ran out (median %s; leases with no kill before they went; allowed: %s, from the last keep-alive sent or restart)",
			lat[0].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), lat[len(lat)/2].Round(time.Millisecond), o.leaseSlack)
	}
	fmt.Printf("  leases: %d granted, %d revoked, %d lapsed, TTL %ds%s\n", lb.granted, lb.revoked, lb.lapsed, o.leaseTTL, latText)
	fmt.Printf("  checks took %s\n", time.Since(checkStart).Round(time.Millisecond))

	if len(violations) > 0 {
		fmt.Printf("%s: VIOLATIONS (work folder kept: %s; server log %s; history %s):\n", name, workdir, server.logPath,
			filepath.Join(workdir, "operations.txt"))
		writeOps(filepath.Join(workdir, "operations.txt"), ops)
		for _, v := range violations {
			fmt.Println("  - " + v.String())
		}
	} else if !o.keep && o.workdir == "" {
		os.RemoveAll(workdir)
	}
	fmt.Printf("%s: %d operations (%d ok, %d unknown, %d failed), %d kills, %d violations\n", name, total, ok, unknown,
		w.failed, len(kills), len(violations))
	if len(violations) > 0 {
		return 1
	}
	return 0
}

func lookPath(name string) (string, error) {
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}
