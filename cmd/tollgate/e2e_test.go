package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// binary is the tollgate binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tollgate-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tollgate")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building tollgate: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running `tollgate serve`.
type process struct {
	cmd        *exec.Cmd
	name       string
	apiAddr    string
	httpAddr   string // the gateway
	grpcAddr   string
	gossipAddr string
	done       chan error

	mu   sync.Mutex
	logs []map[string]any
}

// startServe starts a node on free loopback ports and waits until it logs
// both addresses.
func startServe(t *testing.T, name string, extra ...string) *process {
	t.Helper()
	args := append([]string{"serve", "--node-name", name, "--in-memory", "--log-format", "json",
		"--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "TOLLGATE_ADMIN_TOKEN=e2e-secret")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, name: name, done: make(chan error, 1)}
	addrs := make(chan [2]string, 4)
	go func() {
		// Wait closes the pipe once the process has exited: reading to
		// its end first keeps the last lines (a clean stop's among them).
		p.readLogs(stderr, addrs)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	deadline := time.After(15 * time.Second)
	for p.apiAddr == "" || p.httpAddr == "" || p.grpcAddr == "" || p.gossipAddr == "" {
		select {
		case a := <-addrs:
			switch a[0] {
			case "api":
				p.apiAddr = a[1]
			case "gateway":
				p.httpAddr = a[1]
			case "grpc":
				p.grpcAddr = a[1]
			case "gossip":
				p.gossipAddr = a[1]
			}
		case err := <-p.done:
			p.done <- err // for the cleanup
			t.Fatalf("tollgate exited early: %v; its log: %s", err, p.logText())
		case <-deadline:
			t.Fatal("tollgate did not report its addresses within 15s")
		}
	}
	return p
}

func (p *process) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// exit waits for the process to exit and returns how, keeping it for the
// cleanup.
func (p *process) exit() error {
	err := <-p.done
	p.done <- err
	return err
}

// waitExit fails the test unless the process exits cleanly within timeout.
func (p *process) waitExit(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("%s: exit: %v", p.name, err)
		}
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s", p.name, timeout)
	}
}

func (p *process) readLogs(r io.Reader, addrs chan<- [2]string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			line = map[string]any{"raw": sc.Text()} // not a log line: a panic's trace, say
		}
		p.mu.Lock()
		p.logs = append(p.logs, line)
		p.mu.Unlock()
		if line["msg"] == "listening" {
			addrs <- [2]string{fmt.Sprint(line["server"]), fmt.Sprint(line["addr"])}
		}
	}
}

func (p *process) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, _ := json.Marshal(p.logs)
	return string(b)
}

// postCheck sends a /v1/check body and decodes the answer.
func postCheck(addr, body string) (map[string]any, int, error) {
	resp, err := http.Post("http://"+addr+"/v1/check", "application/json", strings.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var out map[string]any
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out, resp.StatusCode, err
}

func httpCheck(t *testing.T, addr, body string) map[string]any {
	t.Helper()
	out, status, err := postCheck(addr, body)
	if err != nil || status != 200 {
		t.Fatalf("status %d: %v %v", status, out, err)
	}
	return out
}

func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	p := startServe(t, "e2e-1")

	// HTTP: a limit of 10 admits exactly 10, then denies with retry_after.
	body := `{"tenant":"t-http","hits":1,"limits":[{"name":"rpm","algorithm":"token_bucket","limit":10,"period":"60s","burst":10}]}`
	for i := range 10 {
		if out := httpCheck(t, p.apiAddr, body); out["allowed"] != true || out["owner"] != "e2e-1" {
			t.Fatalf("http check %d: %v", i, out)
		}
	}
	out := httpCheck(t, p.apiAddr, body)
	lim := out["limits"].([]any)[0].(map[string]any)
	if out["allowed"] != false || lim["retry_after"].(float64) <= 0 {
		t.Fatalf("11th http check: %v", out)
	}

	// gRPC: the same on another tenant.
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := tollgatev1.NewRateLimiterClient(conn)
	req := &tollgatev1.CheckRequest{Tenant: "t-grpc", Limits: []*tollgatev1.Limit{{
		Name: "rpm", Limit: 10, Period: durationpb.New(time.Minute), Burst: 10}}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for i := range 10 {
		resp, err := client.Check(ctx, req)
		if err != nil || !resp.Allowed {
			t.Fatalf("grpc check %d: %v %v", i, resp, err)
		}
	}
	resp, err := client.Check(ctx, req)
	if err != nil || resp.Allowed || resp.Limits[0].RetryAfter.AsDuration() <= 0 {
		t.Fatalf("11th grpc check: %v %v", resp, err)
	}

	// Metrics count both decisions from both APIs.
	mresp, err := http.Get("http://" + p.apiAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{`tollgate_checks_total{decision="allowed"} 20`, `tollgate_checks_total{decision="denied"} 2`, "tollgate_store_entries 2"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// SIGTERM stops it cleanly, and the admin token never reached the logs.
	p.signal(t, syscall.SIGTERM)
	p.waitExit(t, 15*time.Second)
	logs := p.logText()
	if !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("no clean-stop log line in %s", logs)
	}
	if strings.Contains(logs, "e2e-secret") {
		t.Error("the admin token appears in the logs")
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(binary, "serve", "--api-addr", "not-an-address").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "api-addr") {
		t.Fatalf("want a failure naming api-addr, got %v: %s", err, out)
	}
}
