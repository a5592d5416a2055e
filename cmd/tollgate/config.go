package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/cluster/peer"
	"github.com/tollgate/tollgate/proxy"
)

// Config is everything `tollgate serve` reads. Each field is a flag, a key
// of the same name in the --config YAML file, and a TOLLGATE_* environment
// variable (the flag name in upper case with '-' as '_'). Flags beat the
// environment, which beats the file, which beats the defaults.
type Config struct {
	NodeName          string        `yaml:"node-name"`
	DataDir           string        `yaml:"data-dir"`
	HTTPAddr          string        `yaml:"http-addr"`
	APIAddr           string        `yaml:"api-addr"`
	GRPCAddr          string        `yaml:"grpc-addr"`
	PeerAddr          string        `yaml:"peer-addr"`
	GossipAddr        string        `yaml:"gossip-addr"`
	RaftAddr          string        `yaml:"raft-addr"`
	Join              commaList     `yaml:"join"`
	GossipKey         commaList     `yaml:"gossip-key"`
	ClusterLabel      string        `yaml:"cluster-label"`
	TLSCert           string        `yaml:"tls-cert"`
	TLSKey            string        `yaml:"tls-key"`
	TLSCA             string        `yaml:"tls-ca"`
	InsecureCluster   bool          `yaml:"insecure-cluster"`
	BootstrapExpect   int           `yaml:"bootstrap-expect"`
	AdminToken        string        `yaml:"admin-token"`
	CheckToken        string        `yaml:"check-token"`
	InMemory          bool          `yaml:"in-memory"`
	MaxEntries        int           `yaml:"max-entries"`
	MaxLeases         int           `yaml:"max-leases"`
	BatchWindow       time.Duration `yaml:"batch-window"`
	BatchMax          int           `yaml:"batch-max"`
	ForwardTimeout    time.Duration `yaml:"forward-timeout"`
	IdleTTL           time.Duration `yaml:"idle-ttl"`
	ShutdownTimeout   time.Duration `yaml:"shutdown-timeout"`
	GRPCReflection    bool          `yaml:"grpc-reflection"`
	RLSUnknownDomain  string        `yaml:"rls-unknown-domain"`
	DebugAddr         string        `yaml:"debug-addr"`
	MetricsTenants    int           `yaml:"metrics-tenants"`
	Replicate         bool          `yaml:"replicate"`
	ReplicateInterval time.Duration `yaml:"replicate-interval"`

	UpstreamConnectTimeout time.Duration `yaml:"upstream-connect-timeout"`
	UpstreamHeaderTimeout  time.Duration `yaml:"upstream-header-timeout"`
	UpstreamTimeout        time.Duration `yaml:"upstream-timeout"`
	DefaultMaxTokens       int64         `yaml:"default-max-tokens"`
	ProviderKeyPrefix      string        `yaml:"provider-key-prefix"`
	AllowPrivateUpstreams  bool          `yaml:"allow-private-upstreams"`

	LogLevel  string `yaml:"log-level"`
	LogFormat string `yaml:"log-format"`

	// adminOpen runs the admin API without a token: tollgate dev only.
	adminOpen bool
	// tls is what the TLS flags name, and gossipKeys --gossip-key decoded:
	// both made by validate.
	tls        *peer.TLS
	gossipKeys [][]byte
}

func defaultConfig() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "tollgate"
	}
	return Config{
		NodeName:          host,
		DataDir:           "tollgate-data",
		HTTPAddr:          ":8080",
		APIAddr:           ":8081",
		GRPCAddr:          ":9090",
		GossipAddr:        ":7946",
		RaftAddr:          ":8300",
		MaxEntries:        1 << 20,
		MaxLeases:         1 << 22,
		BatchWindow:       200 * time.Microsecond,
		BatchMax:          128,
		ForwardTimeout:    500 * time.Millisecond,
		IdleTTL:           10 * time.Minute,
		ShutdownTimeout:   10 * time.Second,
		GRPCReflection:    true,
		RLSUnknownDomain:  "ok",
		MetricsTenants:    100,
		Replicate:         true,
		ReplicateInterval: 100 * time.Millisecond,

		UpstreamConnectTimeout: proxy.DefaultConnectTimeout,
		UpstreamHeaderTimeout:  proxy.DefaultHeaderTimeout,
		UpstreamTimeout:        proxy.DefaultTimeout,
		DefaultMaxTokens:       proxy.DefaultMaxTokens,
		ProviderKeyPrefix:      proxy.DefaultKeyEnvPrefix,

		LogLevel:  "info",
		LogFormat: "text",
	}
}

// flags binds every Config field to a flag of fs. The usage strings are the
// reference documentation of the flags (README.md repeats them).
func (c *Config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "unique name of this node in the cluster (defaults to the host name)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for durable state (Raft log and snapshots)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "listen address of the OpenAI-compatible gateway")
	fs.StringVar(&c.APIAddr, "api-addr", c.APIAddr, "listen address of the HTTP JSON API, /metrics, /healthz and /readyz")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "listen address of the public gRPC API (checks, admin, Envoy's rate limit service)")
	fs.IntVar(&c.MetricsTenants, "metrics-tenants", c.MetricsTenants, "how many (tenant, limit) pairs get series of their own in tollgate_throttled_total, first seen first; the rest count as tenant and limit \"other\" (0: all of them)")
	fs.BoolVar(&c.GRPCReflection, "grpc-reflection", c.GRPCReflection, "serve gRPC server reflection on --grpc-addr, so grpcurl finds the services (false: off; grpc.health.v1 is served either way)")
	fs.StringVar(&c.RLSUnknownDomain, "rls-unknown-domain", c.RLSUnknownDomain, "how Envoy's rate limit service answers a domain no rules name (tollgate rls set): ok, as Envoy's reference service does, or over_limit")
	fs.StringVar(&c.DebugAddr, "debug-addr", c.DebugAddr, "listen address of Go's profiles (/debug/pprof/), for profiling a node; empty: off. Keep it on loopback: a profile shows the process's code and memory")
	fs.StringVar(&c.PeerAddr, "peer-addr", c.PeerAddr, "listen address of the node-to-node gRPC service (forwarded checks, hand-offs, settlements, writes to the leader), for the other nodes only; empty: the --grpc-addr host, any free port (gossip tells the others)")
	fs.StringVar(&c.GossipAddr, "gossip-addr", c.GossipAddr, "listen address for gossip membership, UDP and TCP (empty: standalone node)")
	fs.StringVar(&c.RaftAddr, "raft-addr", c.RaftAddr, "listen address for Raft replication")
	fs.Var(&c.Join, "join", "comma-separated gossip addresses of nodes to join")
	fs.Var(&c.GossipKey, "gossip-key", "base64 AES key (16, 24 or 32 bytes) that encrypts and authenticates gossip; several, comma-separated, to rotate: the first is used, all are accepted (prefer TOLLGATE_GOSSIP_KEY)")
	fs.StringVar(&c.ClusterLabel, "cluster-label", c.ClusterLabel, "label on every gossip message: nodes with another label are not heard (keeps clusters on one network apart)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate of this node, naming it (DNS SAN = --node-name), signed by --tls-ca: the peer plane and Raft then run over mutual TLS")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM key of --tls-cert")
	fs.StringVar(&c.TLSCA, "tls-ca", c.TLSCA, "PEM certificate of the CA that signed every node's certificate")
	fs.BoolVar(&c.InsecureCluster, "insecure-cluster", c.InsecureCluster, "run the peer plane and Raft without TLS on addresses other than loopback (anyone who reaches them can write the configuration)")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", c.BootstrapExpect, "number of nodes that form a new Raft cluster together (0: 1 without --join, else join an existing cluster)")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "bearer token for the admin API (prefer TOLLGATE_ADMIN_TOKEN: flags show in ps)")
	fs.StringVar(&c.CheckToken, "check-token", c.CheckToken, "bearer token the check API (POST /v1/check, /v1/release, gRPC tollgate.v1.RateLimiter) requires; empty: none (prefer TOLLGATE_CHECK_TOKEN)")
	fs.BoolVar(&c.InMemory, "in-memory", c.InMemory, "keep all state in memory, nothing on disk (tests and dev)")
	fs.IntVar(&c.MaxEntries, "max-entries", c.MaxEntries, "most limit entries (tenant x limit) a node holds before evicting")
	fs.IntVar(&c.MaxLeases, "max-leases", c.MaxLeases, "most concurrency leases a node holds (~24 bytes each); a check that needs one more gets 503 overloaded")
	fs.DurationVar(&c.BatchWindow, "batch-window", c.BatchWindow, "how long a check forwarded to its owner waits for others to batch with when the queue to that owner is long (0: no wait)")
	fs.IntVar(&c.BatchMax, "batch-max", c.BatchMax, "most checks in one forwarded batch (1: no batching)")
	fs.DurationVar(&c.ForwardTimeout, "forward-timeout", c.ForwardTimeout, "how long to wait for a tenant's owner before the failure policy decides")
	fs.DurationVar(&c.IdleTTL, "idle-ttl", c.IdleTTL, "how long a tenant is unused before its full limits are forgotten")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long a graceful stop waits for requests in flight")
	fs.BoolVar(&c.Replicate, "replicate", c.Replicate, "copy the limit state of the tenants a node owns to their next owner on the ring, which goes on from the copy if the owner crashes (false: a crashed owner's tenants start full)")
	fs.DurationVar(&c.ReplicateInterval, "replicate-interval", c.ReplicateInterval, "how often changed tenant state is copied (sooner once 1,000 tenants have changed): an owner's crash costs at most about this much of their use")
	fs.DurationVar(&c.UpstreamConnectTimeout, "upstream-connect-timeout", c.UpstreamConnectTimeout, "how long the gateway waits to connect to an upstream provider")
	fs.DurationVar(&c.UpstreamHeaderTimeout, "upstream-header-timeout", c.UpstreamHeaderTimeout, "how long the gateway waits for an upstream's answer to begin (then 504)")
	fs.DurationVar(&c.UpstreamTimeout, "upstream-timeout", c.UpstreamTimeout, "longest upstream call, a whole stream included; concurrency leases outlive it by a minute")
	fs.Int64Var(&c.DefaultMaxTokens, "default-max-tokens", c.DefaultMaxTokens, "completion tokens reserved for a request without max_tokens whose plan names no default")
	fs.StringVar(&c.ProviderKeyPrefix, "provider-key-prefix", c.ProviderKeyPrefix, "prefix a provider's api_key_env must have for the gateway to read that variable: no other part of the environment reaches an upstream")
	fs.BoolVar(&c.AllowPrivateUpstreams, "allow-private-upstreams", c.AllowPrivateUpstreams, "let upstreams resolve to link-local addresses (cloud metadata services among them)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
}

// commaList is a comma-separated list on the command line and in the
// environment, and a list or a comma-separated string in YAML.
type commaList []string

func (a *commaList) String() string { return strings.Join(*a, ",") }

func (a *commaList) Set(s string) error {
	*a = nil
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*a = append(*a, part)
		}
	}
	return nil
}

func (a *commaList) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind == yaml.ScalarNode {
		return a.Set(node.Value)
	}
	var list []string
	if err := node.Decode(&list); err != nil {
		return err
	}
	*a = list
	return nil
}

// loadConfig builds the configuration from defaults, the --config file, the
// environment and the command line, in rising precedence, and validates it.
func loadConfig(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("tollgate serve", flag.ContinueOnError)
	fs.SetOutput(usage)
	configPath := fs.String("config", getenv("TOLLGATE_CONFIG"), "YAML file with any of the flags below as keys (env TOLLGATE_CONFIG)")
	cfg.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(usage, "Usage: tollgate serve [flags]\n\nEvery flag can also be set as TOLLGATE_<NAME> (e.g. TOLLGATE_API_ADDR) or as a key in --config.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	// The parse above has written the command line into cfg; note what it
	// set, then rebuild in order of precedence.
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	cfg = defaultConfig()
	if *configPath != "" {
		if err := cfg.readFile(*configPath); err != nil {
			return Config{}, err
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "TOLLGATE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" && f.Name != "config" && err == nil {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %v", env, e)
			}
		}
	})
	for name, v := range set {
		if e := fs.Lookup(name).Value.Set(v); e != nil && err == nil {
			err = fmt.Errorf("--%s: %v", name, e)
		}
	}
	if err != nil {
		return Config{}, err
	}
	return cfg, cfg.validate()
}

func (c *Config) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	return nil
}

// validate reports the first bad field by its flag name.
func (c *Config) validate() error {
	if c.NodeName == "" {
		return errors.New("node-name: must not be empty")
	}
	if c.GossipAddr != "" {
		if _, _, err := net.SplitHostPort(c.GossipAddr); err != nil {
			return fmt.Errorf("gossip-addr: %q is not host:port: %v", c.GossipAddr, err)
		}
	}
	for _, a := range []struct{ name, addr string }{
		{"http-addr", c.HTTPAddr}, {"api-addr", c.APIAddr}, {"grpc-addr", c.GRPCAddr}, {"peer-addr", c.peerListen()}, {"raft-addr", c.RaftAddr},
	} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s: %q is not host:port: %v", a.name, a.addr, err)
		}
	}
	if c.RLSUnknownDomain != "ok" && c.RLSUnknownDomain != "over_limit" {
		return fmt.Errorf("rls-unknown-domain: %q is not ok or over_limit", c.RLSUnknownDomain)
	}
	var err error
	if c.gossipKeys, err = c.decodeGossipKeys(); err != nil {
		return err
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return fmt.Errorf("join: %q is not host:port: %v", j, err)
		}
	}
	switch {
	case len(c.Join) > 0 && c.GossipAddr == "":
		return errors.New("join: needs a gossip-addr")
	case c.BootstrapExpect < 0:
		return fmt.Errorf("bootstrap-expect: must be >= 0, got %d", c.BootstrapExpect)
	case !c.InMemory && c.DataDir == "":
		return errors.New("data-dir: required unless --in-memory")
	case c.MaxEntries <= 0:
		return fmt.Errorf("max-entries: must be > 0, got %d", c.MaxEntries)
	case c.MetricsTenants < 0 || c.MetricsTenants > 100_000:
		return fmt.Errorf("metrics-tenants: must be between 0 and 100000, got %d", c.MetricsTenants)
	case c.MaxLeases <= 0:
		return fmt.Errorf("max-leases: must be > 0, got %d", c.MaxLeases)
	case c.BatchWindow < 0 || c.BatchWindow > time.Second:
		return fmt.Errorf("batch-window: must be between 0 and 1s, got %s", c.BatchWindow)
	case c.BatchMax < 1 || c.BatchMax > 10_000:
		return fmt.Errorf("batch-max: must be between 1 and 10000, got %d", c.BatchMax)
	case c.ForwardTimeout <= 0:
		return fmt.Errorf("forward-timeout: must be > 0, got %s", c.ForwardTimeout)
	case c.IdleTTL <= 0:
		return fmt.Errorf("idle-ttl: must be > 0, got %s", c.IdleTTL)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("shutdown-timeout: must be > 0, got %s", c.ShutdownTimeout)
	case c.ReplicateInterval < time.Millisecond || c.ReplicateInterval > time.Minute:
		return fmt.Errorf("replicate-interval: must be between 1ms and 1m, got %s", c.ReplicateInterval)
	case c.UpstreamConnectTimeout <= 0:
		return fmt.Errorf("upstream-connect-timeout: must be > 0, got %s", c.UpstreamConnectTimeout)
	case c.UpstreamHeaderTimeout <= 0:
		return fmt.Errorf("upstream-header-timeout: must be > 0, got %s", c.UpstreamHeaderTimeout)
	case c.UpstreamTimeout <= 0:
		return fmt.Errorf("upstream-timeout: must be > 0, got %s", c.UpstreamTimeout)
	case c.DefaultMaxTokens <= 0:
		return fmt.Errorf("default-max-tokens: must be > 0, got %d", c.DefaultMaxTokens)
	}
	if _, err := c.logger(io.Discard); err != nil {
		return err
	}
	// Last: the other fields' errors say more about a mistyped flag.
	return c.loadTLS()
}

func (c *Config) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("log-level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log-format: %q is not text or json", c.LogFormat)
}

// decodeGossipKeys decodes --gossip-key.
func (c *Config) decodeGossipKeys() ([][]byte, error) {
	var keys [][]byte
	for i, k := range c.GossipKey {
		key, err := base64.StdEncoding.DecodeString(k)
		if err == nil {
			err = memberlist.ValidateKey(key)
		}
		if err != nil {
			return nil, fmt.Errorf("gossip-key: key %d: not a base64 AES key of 16, 24 or 32 bytes (make one with: head -c 32 /dev/urandom | base64)", i+1)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// loadTLS loads the TLS flags, all three or none. Unless
// --insecure-cluster, gossip beyond loopback needs --gossip-key, and the
// peer plane and Raft beyond loopback need the TLS flags.
func (c *Config) loadTLS() error {
	switch set := c.TLSCert != "" || c.TLSKey != "" || c.TLSCA != ""; {
	case set && (c.TLSCert == "" || c.TLSKey == "" || c.TLSCA == ""):
		return errors.New("tls-cert, tls-key, tls-ca: give all three, or none")
	case set:
		t, err := peer.LoadTLS(c.TLSCert, c.TLSKey, c.TLSCA)
		if err != nil {
			return err
		}
		// The others dial this node by its name and check it: a
		// certificate for another name would start, then be refused.
		if !slices.Contains(t.Names(), c.NodeName) {
			return fmt.Errorf("tls-cert: %s names %v, not this node (--node-name %q)", c.TLSCert, t.Names(), c.NodeName)
		}
		c.tls = t
	}
	if c.InsecureCluster {
		return nil
	}
	if c.GossipAddr != "" && !loopback(c.GossipAddr) && len(c.gossipKeys) == 0 {
		return fmt.Errorf("gossip-addr: %q is reachable from other hosts, and without --gossip-key any process that reaches it can join the cluster, own tenants and vote in Raft: give a key, listen on loopback, or accept it with --insecure-cluster", c.GossipAddr)
	}
	if c.tls != nil {
		return nil
	}
	for _, a := range []struct{ name, addr string }{{"peer-addr", c.peerListen()}, {"raft-addr", c.RaftAddr}} {
		if !loopback(a.addr) {
			return fmt.Errorf("%s: %q is reachable from other hosts, and without --tls-cert, --tls-key and --tls-ca anyone who reaches it can write the configuration: give the TLS flags, listen on loopback, or accept it with --insecure-cluster", a.name, a.addr)
		}
	}
	return nil
}

// loopback reports whether addr listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// peerListen is where the peer service listens: --peer-addr, or the host
// of --grpc-addr on any free port.
func (c *Config) peerListen() string {
	if c.PeerAddr != "" {
		return c.PeerAddr
	}
	host, _, err := net.SplitHostPort(c.GRPCAddr)
	if err != nil {
		return c.PeerAddr
	}
	return net.JoinHostPort(host, "0")
}
