package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/cluster/peer"
)

// devCluster runs `tollgate dev`: an N-node cluster in this process on
// loopback, until ctx ends.
func devCluster(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tollgate dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("nodes", 3, "number of nodes")
	apiPort := fs.Int("api-port", 8081, "API port of node-1; node-n gets api-port+n-1 (0: any free port)")
	grpcPort := fs.Int("grpc-port", 9090, "gRPC port of node-1; node-n gets grpc-port+n-1 (0: any free port)")
	peerPort := fs.Int("peer-port", 9190, "node-to-node gRPC port of node-1; node-n gets peer-port+n-1 (0: any free port)")
	gossipPort := fs.Int("gossip-port", 7946, "gossip port of node-1; node-n gets gossip-port+n-1 (0: any free port)")
	raftPort := fs.Int("raft-port", 8300, "Raft port of node-1; node-n gets raft-port+n-1 (0: any free port)")
	httpPort := fs.Int("http-port", 8000, "gateway port of node-1; node-n gets http-port+n-1 (0: any free port)")
	mockPort := fs.Int("mock-port", 8070, "port of the mock upstream (0: any free port)")
	mockChunkDelay := fs.Duration("mock-chunk-delay", 20*time.Millisecond, "the mock upstream's wait before each streamed token")
	adminToken := fs.String("admin-token", "", "admin token (default $TOLLGATE_ADMIN_TOKEN; with neither, the admin API needs none)")
	checkToken := fs.String("check-token", "", "check API token (default $TOLLGATE_CHECK_TOKEN; with neither, one is made up and printed)")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn or error (requests' audit lines show at any level)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *adminToken == "" {
		*adminToken = getenv("TOLLGATE_ADMIN_TOKEN") // read after parsing: help must not print it
	}
	if *checkToken == "" {
		*checkToken = getenv("TOLLGATE_CHECK_TOKEN")
	}
	if *checkToken == "" {
		// The check API spends any tenant's limits: even a demo asks for
		// a token, made up here and printed with the demo's keys.
		*checkToken = "tgc_" + rand.Text()
	}
	if *nodes < 1 || *nodes > 16 {
		return fmt.Errorf("nodes: must be between 1 and 16, got %d", *nodes)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("log-level: %q is not one of debug, info, warn, error", *logLevel)
	}
	base := defaultConfig()
	base.LogLevel = "debug" // devLog filters
	// Nothing on disk; the nodes form one Raft cluster once all are up.
	base.InMemory = true
	base.BootstrapExpect = *nodes
	base.AdminToken, base.adminOpen = *adminToken, *adminToken == ""
	base.CheckToken = *checkToken
	// Gossip between the dev nodes is encrypted too, with a key made up
	// for this run.
	gossipKey := make([]byte, 32)
	_, _ = rand.Read(gossipKey)
	base.gossipKeys = [][]byte{gossipKey}
	all, err := base.logger(stderr)
	if err != nil {
		return err
	}
	devlog := newDevLog(all.Handler(), level)
	log := slog.New(devlog)
	port := func(first, i int) string {
		if first == 0 {
			return "127.0.0.1:0"
		}
		return "127.0.0.1:" + strconv.Itoa(first+i)
	}

	// The mock upstream first: the demo provider points at it.
	mock, err := startDevMock(port(*mockPort, 0), *mockChunkDelay)
	if err != nil {
		return err
	}
	defer mock.Close()

	var servers []*runningNode
	defer func() {
		// Stop in reverse, each handing its tenants to the others.
		for i := len(servers) - 1; i >= 0; i-- {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = servers[i].Shutdown(sctx)
			cancel()
		}
	}()
	// A throwaway CA and a certificate for each node: the peer plane and
	// Raft run over mutual TLS as a real cluster's should.
	certDir, err := os.MkdirTemp("", "tollgate-dev-certs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(certDir)
	names := make([]string, *nodes)
	for i := range names {
		names[i] = fmt.Sprintf("node-%d", i+1)
	}
	if err := peer.WriteCerts(certDir, names, 24*time.Hour); err != nil {
		return fmt.Errorf("making the dev certificates: %w", err)
	}
	for i := range *nodes {
		cfg := base
		cfg.NodeName = names[i]
		cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = peer.Files(certDir, cfg.NodeName)
		if err := cfg.loadTLS(); err != nil {
			return err
		}
		cfg.APIAddr, cfg.GRPCAddr, cfg.GossipAddr = port(*apiPort, i), port(*grpcPort, i), port(*gossipPort, i)
		cfg.PeerAddr = port(*peerPort, i)
		cfg.RaftAddr, cfg.HTTPAddr = port(*raftPort, i), port(*httpPort, i)
		if i > 0 {
			cfg.Join = []string{servers[0].GossipAddr()}
		}
		srv, err := startNode(ctx, cfg, log.With("node", cfg.NodeName))
		if err != nil {
			return fmt.Errorf("%s: %w", cfg.NodeName, err)
		}
		servers = append(servers, srv)
	}
	if err := waitForMembers(ctx, servers); err != nil {
		return err
	}
	devlog.clusterFormed()
	keys, err := seedDemo(ctx, "http://"+servers[0].APIAddr(), *adminToken, "http://"+mock.Addr().String()+"/v1")
	if err != nil {
		return fmt.Errorf("creating the demo tenants: %w", err)
	}
	printDev(stdout, servers, mock.Addr().String(), keys, *checkToken)
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	return nil
}

// waitForMembers waits until every node sees all of them and has the
// default plans from the Raft leader.
func waitForMembers(ctx context.Context, servers []*runningNode) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		formed := true
		for _, s := range servers {
			_, seeded := s.Node.Config().Plan("bronze")
			formed = formed && s.Node.Ready() && s.Node.RingSize() == len(servers) && seeded
		}
		if formed {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the nodes did not find each other within 15s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func printDev(w io.Writer, servers []*runningNode, mock string, keys []demoKey, checkToken string) {
	fmt.Fprintf(w, "Tollgate dev cluster: %d nodes on loopback, a mock upstream on %s (Ctrl-C stops it)\n\n", len(servers), mock)
	fmt.Fprintf(w, "%-8s %-22s %-22s %-22s %s\n", "node", "gateway", "api", "grpc", "gossip")
	for _, s := range servers {
		fmt.Fprintf(w, "%-8s %-22s %-22s %-22s %s\n", s.Node.Name(), s.HTTPAddr(), s.APIAddr(), s.GRPCAddr(), s.GossipAddr())
	}
	fmt.Fprintf(w, "\nDemo tenants and their API keys (the keys are shown only now):\n\n")
	for _, k := range keys {
		fmt.Fprintf(w, "  %-12s plan %-8s %s\n", k.tenant, k.plan, k.key)
	}
	gw := "http://" + servers[0].HTTPAddr()
	fmt.Fprintf(w, "\nA chat completion through the gateway (any node's gateway will do):\n\n")
	fmt.Fprintf(w, "  curl -s %s/v1/chat/completions -H 'Authorization: Bearer %s' \\\n", gw, keys[0].key)
	fmt.Fprintf(w, "    -d '{\"model\":\"mock-chat\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'\n")
	fmt.Fprintf(w, "  curl -sN %s/v1/chat/completions -H 'Authorization: Bearer %s' \\\n", "http://"+servers[len(servers)-1].HTTPAddr(), keys[0].key)
	fmt.Fprintf(w, "    -d '{\"model\":\"mock-chat\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'\n")
	fmt.Fprintf(w, "\nThe check API (its token: %s) and the admin CLI:\n\n", checkToken)
	fmt.Fprintf(w, "  curl -s %s/v1/check -H 'Authorization: Bearer %s' \\\n", "http://"+servers[0].APIAddr(), checkToken)
	fmt.Fprintf(w, "    -d '{\"tenant\":\"acme\",\"hits\":1,\"limits\":[{\"name\":\"rpm\",\"algorithm\":\"token_bucket\",\"limit\":10,\"period\":\"60s\"}]}'\n")
	fmt.Fprintf(w, "  curl -s %s/v1/cluster?tenant=%s\n", "http://"+servers[len(servers)-1].APIAddr(), keys[0].tenant)
	fmt.Fprintf(w, "  tollgate usage %s --server http://%s\n", keys[0].tenant, servers[0].APIAddr())
	fmt.Fprintf(w, "\nThe OpenAI SDK (Python), pointed at a gateway:\n\n")
	fmt.Fprintf(w, "  from openai import OpenAI\n")
	fmt.Fprintf(w, "  client = OpenAI(base_url=%q, api_key=%q)\n", gw+"/v1", keys[0].key)
	fmt.Fprintf(w, "  print(client.chat.completions.create(model=\"mock-chat\", messages=[{\"role\": \"user\", \"content\": \"Hello\"}]).choices[0].message.content)\n")
	fmt.Fprintf(w, "\nRequests show below as they arrive, one audit line each.\n\n")
}
