package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is the server under test, run as a child process on a fixed port and data folder: killed with
// SIGKILL and started again on both.
type Server struct {
	kind     string // "sdp" or "etcd"
	binary   string
	port     int
	peerPort int // etcd's peer port
	dataDir  string
	logPath  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited and been reaped
}

// Endpoint is the client URL of the server.
func (s *Server) Endpoint() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

func (s *Server) args() []string {
	if s.kind == "sdp" {
		return []string{s.binary, "config-db", "--config-listen", s.Endpoint(), "--data-dir", s.dataDir}
	}
	client := "http://" + s.Endpoint()
	peer := fmt.Sprintf("http://127.0.0.1:%d", s.peerPort)
	return []string{s.binary,
		"--name", "robustness",
		"--data-dir", s.dataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "robustness=" + peer,
		"--initial-cluster-state", "new", "--initial-cluster-token", filepath.Base(filepath.Dir(s.dataDir)),
		"--logger", "zap", "--log-outputs", "stderr",
	}
}

// childEnv is this process's environment without the settings the servers read from it (a listen address
// or data folder of the caller's would change what is tested).
func childEnv() []string {
	var env []string
	for _, v := range os.Environ() {
		if strings.HasPrefix(v, "SDP_") || strings.HasPrefix(v, "ETCD_") {
			continue
		}
		env = append(env, v)
	}
	return env
}

// spawns carries every start of a child to one goroutine locked to its thread: the kernel sends a child
// its parent-death signal when the thread that forked it ends, and this thread ends only with the process.
var spawns = make(chan func())

func init() {
	go func() {
		runtime.LockOSThread()
		for f := range spawns {
			f()
		}
	}()
}

// Start starts the server and waits until it answers a read.
func (s *Server) Start(timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	fmt.Fprintf(log, "\n==== robustness: starting %s\n", strings.Join(s.args(), " "))
	args := s.args()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so that a Ctrl-C reaches this program, which kills it; killed with this
	// process whatever the way it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done := make(chan error)
	spawns <- func() { done <- cmd.Start() }
	if err := <-done; err != nil {
		return 0, fmt.Errorf("cannot start %s: %w", args[0], err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	if err := waitReady(s.Endpoint(), timeout, exited); err != nil {
		s.Kill()
		return 0, fmt.Errorf("%s did not serve on %s within %s: %w (its log: %s)", s.kind, s.Endpoint(), timeout, err,
			s.logPath)
	}
	return time.Since(t0), nil
}

// Kill kills the server with SIGKILL and waits for it to be gone. Safe to call at any time, more than once.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
	}
}

// waitReady waits until a read on endpoint succeeds.
func waitReady(endpoint string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("it exited")
		default:
		}
		conn, err := net.DialTimeout("tcp", endpoint, 200*time.Millisecond)
		if err != nil {
			last = err
			time.Sleep(20 * time.Millisecond)
			continue
		}
		conn.Close()
		cli, err := newClient(endpoint)
		if err != nil {
			last = err
			time.Sleep(20 * time.Millisecond)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err = cli.Get(ctx, "health")
		cancel()
		cli.Close()
		if err == nil {
			return nil
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	return last
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
