package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/cluster/peer"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "tollgate.yaml")
	yaml := "node-name: from-file\napi-addr: 127.0.0.1:1111\ngrpc-addr: 127.0.0.1:2222\njoin: [a:1, b:2]\nidle-ttl: 5m\ninsecure-cluster: true\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(
		[]string{"--config", file, "--grpc-addr", "127.0.0.1:3333"},
		env(map[string]string{"TOLLGATE_API_ADDR": "127.0.0.1:4444", "TOLLGATE_GRPC_ADDR": "127.0.0.1:5555", "TOLLGATE_IN_MEMORY": "true"}),
		io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		"node-name (file)":   {cfg.NodeName, "from-file"},
		"api-addr (env)":     {cfg.APIAddr, "127.0.0.1:4444"},
		"grpc-addr (flag)":   {cfg.GRPCAddr, "127.0.0.1:3333"},
		"join (file list)":   {cfg.Join.String(), "a:1,b:2"},
		"http-addr (dflt)":   {cfg.HTTPAddr, ":8080"},
		"in-memory (env)":    {boolString(cfg.InMemory), "true"},
		"idle-ttl (file)":    {cfg.IdleTTL.String(), (5 * time.Minute).String()},
		"shutdown (default)": {cfg.ShutdownTimeout.String(), "10s"},
	}
	for name, w := range want {
		if w[0] != w[1] {
			t.Errorf("%s = %q, want %q", name, w[0], w[1])
		}
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func TestConfigJoinFromEnvAndFlag(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig([]string{"--join", "x:1, y:2", "--insecure-cluster"}, env(nil), io.Discard)
	if err != nil || cfg.Join.String() != "x:1,y:2" {
		t.Fatalf("%v %v", cfg.Join, err)
	}
	cfg, err = loadConfig(nil, env(map[string]string{"TOLLGATE_JOIN": "z:3", "TOLLGATE_INSECURE_CLUSTER": "true"}), io.Discard)
	if err != nil || cfg.Join.String() != "z:3" {
		t.Fatalf("%v %v", cfg.Join, err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(badYAML, []byte("api-adr: 1\n"), 0o600)
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--api-addr", "nonsense"}, nil, "api-addr"},
		{[]string{"--join", "nohost"}, nil, "join"},
		{[]string{"--bootstrap-expect", "-1"}, nil, "bootstrap-expect"},
		{[]string{"--max-entries", "0"}, nil, "max-entries"},
		{[]string{"--max-leases", "-1"}, nil, "max-leases"},
		{[]string{"--replicate-interval", "0s"}, nil, "replicate-interval"},
		{[]string{"--log-level", "loud"}, nil, "log-level"},
		{[]string{"--log-format", "xml"}, nil, "log-format"},
		{[]string{"--data-dir", ""}, nil, "data-dir"},
		{nil, map[string]string{"TOLLGATE_IDLE_TTL": "soon"}, "TOLLGATE_IDLE_TTL"},
		{[]string{"--config", badYAML}, nil, "api-adr"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, nil, "--config"},
		{[]string{"stray"}, nil, "stray"},
		{[]string{"--gossip-key", "c2hvcnQ="}, nil, "gossip-key"},
		// Without a gossip key gossip stays on loopback; without TLS the
		// peer plane and Raft too.
		{nil, nil, "gossip-addr"},
		{[]string{"--gossip-addr", "127.0.0.1:7946"}, nil, "peer-addr"},
		{[]string{"--gossip-addr", "127.0.0.1:7946", "--grpc-addr", "127.0.0.1:9090"}, nil, "raft-addr"},
		{[]string{"--tls-cert", "node.pem"}, nil, "tls-cert, tls-key, tls-ca"},
		{nil, map[string]string{"TOLLGATE_GOSSIP_KEY": "MDEyMzQ1Njc4OWFiY2RlZg==,not base64!"}, "gossip-key: key 2"},
	}
	for _, c := range cases {
		_, err := loadConfig(c.args, env(c.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("loadConfig(%q, %v) = %v, want an error naming %q", c.args, c.env, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "c2hvcnQ") {
			t.Errorf("the error shows the gossip key: %v", err)
		}
	}
}

func TestEveryFlagIsDocumentedInTheREADME(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var usage strings.Builder
	_, _ = loadConfig([]string{"-h"}, env(nil), &usage)
	for _, line := range strings.Split(usage.String(), "\n") {
		if f, ok := strings.CutPrefix(strings.TrimSpace(line), "-"); ok {
			name := strings.Fields(f)[0]
			if !strings.Contains(string(readme), "--"+name) {
				t.Errorf("README.md does not document --%s", name)
			}
		}
	}
}

// With the three TLS flags a node may listen on any address; a node on
// loopback, or one that accepts the risk, needs none.
func TestConfigTLSOrLoopback(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := peer.WriteCerts(dir, []string{"n1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, caFile := peer.Files(dir, "n1")
	cfg, err := loadConfig([]string{"--node-name", "n1", "--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", caFile,
		"--gossip-key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, env(nil), io.Discard)
	if err != nil || cfg.tls == nil {
		t.Fatalf("with TLS: %v (tls %v)", err, cfg.tls)
	}
	for _, args := range [][]string{
		{"--gossip-addr", "127.0.0.1:7946", "--peer-addr", "127.0.0.1:9190", "--raft-addr", "[::1]:8300"},
		{"--gossip-addr", "localhost:7946", "--grpc-addr", "127.0.0.1:9090", "--raft-addr", "127.0.0.1:8300"},
		{"--insecure-cluster"},
	} {
		if cfg, err := loadConfig(args, env(nil), io.Discard); err != nil || cfg.tls != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
	if _, err := loadConfig([]string{"--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", keyFile}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "tls-ca") {
		t.Errorf("a CA file with no certificate: %v", err)
	}
	if _, err := loadConfig([]string{"--node-name", "n2", "--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", caFile, "--insecure-cluster"}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "tls-cert") {
		t.Errorf("n1's certificate on node n2: %v", err)
	}
}
