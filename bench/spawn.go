package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/api/admin"
)

// localCluster is a cluster of `tollgate serve` processes on loopback
// that a run started, and, for the gateway, a `tollgate mock-upstream`.
type localCluster struct {
	binary, token string
	args          []string // more flags for every node
	expect        int
	logs          string // each process's whole output goes to logs/<name>.log, if set

	mu     sync.Mutex
	formed bool       // the first nodes have formed the cluster
	nodes  []*process // running
	killed []*process
	// certs, if set, holds a certificate for each node name bench-node-1
	// to bench-node-certNodes (tollgate certs).
	certs     string
	certNodes int
	next      int // numbers new nodes
	mock      *process
}

// process is one child process and the addresses it reported.
type process struct {
	name  string
	cmd   *exec.Cmd
	addrs map[string]string // by server: api, grpc, gateway, gossip, mock
	done  chan error
}

// spawnCluster starts cfg.Spawn nodes, waits until they form one cluster,
// and for the gateway scenario starts a mock upstream and registers it.
func spawnCluster(ctx context.Context, cfg *Config) (*localCluster, error) {
	if cfg.Binary == "" {
		return nil, errors.New("spawn: no tollgate binary to start")
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	c := &localCluster{binary: cfg.Binary, token: hex.EncodeToString(secret), args: cfg.SpawnArgs, expect: cfg.Spawn, logs: cfg.SpawnLogs}
	if cfg.SpawnTLS {
		if err := c.makeCerts(ctx, cfg.Spawn+8); err != nil { // room for chaos's new nodes
			return nil, err
		}
	}
	for range cfg.Spawn {
		if _, err := c.startNode(ctx, "", nil); err != nil {
			c.stop()
			return nil, err
		}
	}
	if err := c.waitFormed(ctx, 30*time.Second); err != nil {
		c.stop()
		return nil, err
	}
	c.mu.Lock()
	c.formed = true
	c.mu.Unlock()
	cfg.AdminServer, cfg.AdminToken = c.nodes[0].addrs["api"], c.token
	if cfg.Scenario == ScenarioGateway {
		if err := c.startMock(ctx, cfg); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

// startNode starts a node under name (a new one if empty), joining the
// running nodes, and waits for its addresses. A restarted node takes back
// the addresses it had (prev), so the load reaches it again.
func (c *localCluster) startNode(ctx context.Context, name string, prev map[string]string) (*process, error) {
	addr := func(server string) string {
		if a := prev[server]; a != "" {
			return a
		}
		return "127.0.0.1:0"
	}
	c.mu.Lock()
	if name == "" {
		c.next++
		name = fmt.Sprintf("bench-node-%d", c.next)
	}
	args := []string{"serve", "--node-name", name, "--in-memory", "--log-format", "json",
		"--api-addr", addr("api"), "--grpc-addr", addr("grpc"), "--peer-addr", "127.0.0.1:0", "--http-addr", addr("gateway"),
		"--gossip-addr", addr("gossip"), "--raft-addr", "127.0.0.1:0"}
	args = append(args, c.args...)
	if c.certs != "" {
		if c.next > c.certNodes {
			c.mu.Unlock()
			return nil, fmt.Errorf("spawn: no certificate for %s (certificates were made for %d nodes)", name, c.certNodes)
		}
		dir := c.certs
		args = append(args, "--tls-cert", filepath.Join(dir, name+".pem"), "--tls-key", filepath.Join(dir, name+"-key.pem"), "--tls-ca", filepath.Join(dir, "ca.pem"))
	}
	// The first nodes form the cluster together; a node started later
	// (chaos) joins the one there, and must not bootstrap another.
	if !c.formed {
		args = append(args, "--bootstrap-expect", fmt.Sprint(c.expect))
	}
	if len(c.nodes) > 0 {
		var join []string
		for _, n := range c.nodes {
			join = append(join, n.addrs["gossip"])
		}
		args = append(args, "--join", strings.Join(join, ","))
	}
	c.mu.Unlock()
	p, err := c.start(ctx, name, args, []string{"api", "grpc", "gateway", "gossip"})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, p)
	c.mu.Unlock()
	return p, nil
}

// start runs the binary with args and reads the addresses it reports.
// The child dies with the bench (Pdeathsig) and is in a process group of
// its own, so a Ctrl-C reaches the bench alone, which stops it in order.
func (c *localCluster) start(ctx context.Context, name string, args, servers []string) (*process, error) {
	cmd := exec.Command(c.binary, args...)
	cmd.Env = append(cmd.Environ(), "TOLLGATE_ADMIN_TOKEN="+c.token)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out := &childOutput{found: make(chan [2]string, 8)}
	cmd.Stdout, cmd.Stderr = out, out
	var logFile *os.File
	if c.logs != "" {
		f, err := os.OpenFile(filepath.Join(c.logs, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("spawn: %w", err)
		}
		logFile = f
		w := io.MultiWriter(out, f)
		cmd.Stdout, cmd.Stderr = w, w
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("spawn: starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, addrs: map[string]string{}, done: make(chan error, 1)}
	go func() {
		err := cmd.Wait() // returns once the output is copied
		if logFile != nil {
			logFile.Close()
		}
		p.done <- err
	}()
	deadline := time.After(15 * time.Second)
	for _, s := range servers {
		for p.addrs[s] == "" {
			select {
			case a := <-out.found:
				p.addrs[a[0]] = a[1]
			case err := <-p.done:
				p.done <- err
				return nil, fmt.Errorf("spawn: %s exited at start: %v; its last lines:\n%s", name, err, out.tail())
			case <-deadline:
				_ = cmd.Process.Kill()
				return nil, fmt.Errorf("spawn: %s did not report its addresses within 15s; its last lines:\n%s", name, out.tail())
			case <-ctx.Done():
				_ = cmd.Process.Kill()
				return nil, ctx.Err()
			}
		}
	}
	return p, nil
}

// childOutput takes a child's output: it reports the addresses the child
// says it listens on and keeps its last lines for an error message;
// everything else (a gateway's audit lines, say) is dropped unread.
type childOutput struct {
	mu    sync.Mutex
	found chan [2]string
	part  []byte
	last  []string
}

const keptLines = 20

func (o *childOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.part = append(o.part, p...)
	for {
		i := bytes.IndexByte(o.part, '\n')
		if i < 0 {
			if len(o.part) > 64<<10 {
				o.part = o.part[:0] // a line too long to be an address
			}
			return len(p), nil
		}
		o.line(string(o.part[:i]))
		o.part = o.part[i+1:]
	}
}

func (o *childOutput) line(l string) {
	o.last = append(o.last, l)
	if len(o.last) > keptLines {
		o.last = o.last[1:]
	}
	var log struct{ Msg, Server, Addr string }
	switch {
	case strings.Contains(l, `"msg":"listening"`) && json.Unmarshal([]byte(l), &log) == nil:
		o.report(log.Server, log.Addr)
	case strings.HasPrefix(l, "mock upstream listening on "):
		o.report("mock", strings.TrimPrefix(l, "mock upstream listening on "))
	}
}

func (o *childOutput) report(server, addr string) {
	select {
	case o.found <- [2]string{server, addr}:
	default:
	}
}

func (o *childOutput) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.last, "\n")
}

// waitFormed waits until every node sees all of them as owners and the
// cluster's configuration has its default plans.
func (c *localCluster) waitFormed(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		why := c.notFormed(ctx)
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("spawn: the %d nodes did not form a cluster within %s: %s", len(c.nodes), timeout, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// notFormed says what the cluster still lacks, "" once every node sees
// all of them as owners and the default plans are there.
func (c *localCluster) notFormed(ctx context.Context) string {
	c.mu.Lock()
	nodes := slices.Clone(c.nodes)
	c.mu.Unlock()
	for _, n := range nodes {
		var view struct {
			Ring []string `json:"ring"`
		}
		api, err := admin.NewClient(n.addrs["api"], "", adminTimeout)
		if err == nil {
			err = api.Do(ctx, http.MethodGet, "/v1/cluster", nil, &view)
		}
		switch {
		case err != nil:
			return fmt.Sprintf("%s: %v", n.name, err)
		case len(view.Ring) != len(nodes):
			return fmt.Sprintf("%s sees owners %v", n.name, view.Ring)
		}
	}
	api, err := admin.NewClient(nodes[0].addrs["api"], c.token, adminTimeout)
	if err == nil {
		_, err = api.GetPlan(ctx, "bronze")
	}
	if err != nil {
		return fmt.Sprintf("the default plans are not there yet: %v", err)
	}
	return ""
}

// startMock starts the mock upstream and registers it as the provider of
// cfg.Model.
func (c *localCluster) startMock(ctx context.Context, cfg *Config) error {
	p, err := c.start(ctx, "mock-upstream", []string{"mock-upstream", "--addr", "127.0.0.1:0", "--models", cfg.Model}, []string{"mock"})
	if err != nil {
		return err
	}
	c.mock = p
	api, err := admin.NewClient(cfg.AdminServer, c.token, adminTimeout)
	if err != nil {
		return err
	}
	return api.PutProvider(ctx, admin.Provider{Name: "bench-mock", BaseURL: p.addrs["mock"] + "/v1", Models: []string{cfg.Model}})
}

// targets are the running nodes' addresses for a scenario.
func (c *localCluster) targets(scenario string) []string {
	server := map[string]string{ScenarioCheckGRPC: "grpc", ScenarioCheckHTTP: "api", ScenarioGateway: "gateway"}[scenario]
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addrs[server]
	}
	return out
}

// stop ends every process gracefully, in parallel, killing what has not
// stopped within 5 s: they hold nothing worth waiting for.
// makeCerts has the binary write a CA and certificates for n nodes.
func (c *localCluster) makeCerts(ctx context.Context, n int) error {
	dir, err := os.MkdirTemp("", "tollgate-bench-certs-")
	if err != nil {
		return err
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("bench-node-%d", i+1)
	}
	if out, err := exec.CommandContext(ctx, c.binary, "certs", "--dir", dir, "--nodes", strings.Join(names, ",")).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("spawn: making certificates: %v: %s", err, out)
	}
	c.certs, c.certNodes = dir, n
	return nil
}

func (c *localCluster) stop() {
	defer func() {
		if c.certs != "" {
			os.RemoveAll(c.certs)
		}
	}()
	c.mu.Lock()
	procs := slices.Clone(c.nodes)
	if c.mock != nil {
		procs = append(procs, c.mock)
	}
	c.nodes = nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { _ = p.terminate(5 * time.Second) })
	}
	wg.Wait()
}

// terminate sends SIGTERM and waits, then SIGKILL.
func (p *process) terminate(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		return fmt.Errorf("%s did not stop within %s", p.name, timeout)
	}
}
