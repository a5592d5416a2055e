package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/cluster"
)

// devCluster runs `tollgate dev`: an N-node cluster in this process on
// loopback, until ctx ends.
func devCluster(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tollgate dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("nodes", 3, "number of nodes")
	apiPort := fs.Int("api-port", 8081, "API port of node-1; node-n gets api-port+n-1 (0: any free port)")
	grpcPort := fs.Int("grpc-port", 9090, "gRPC port of node-1; node-n gets grpc-port+n-1 (0: any free port)")
	gossipPort := fs.Int("gossip-port", 7946, "gossip port of node-1; node-n gets gossip-port+n-1 (0: any free port)")
	raftPort := fs.Int("raft-port", 8300, "Raft port of node-1; node-n gets raft-port+n-1 (0: any free port)")
	adminToken := fs.String("admin-token", "", "admin token (default $TOLLGATE_ADMIN_TOKEN; with neither, the admin API needs none)")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *adminToken == "" {
		*adminToken = getenv("TOLLGATE_ADMIN_TOKEN") // read after parsing: help must not print it
	}
	if *nodes < 1 || *nodes > 16 {
		return fmt.Errorf("nodes: must be between 1 and 16, got %d", *nodes)
	}
	base := defaultConfig()
	base.LogLevel = *logLevel
	// Nothing on disk; the nodes form one Raft cluster once all are up.
	base.InMemory = true
	base.BootstrapExpect = *nodes
	base.AdminToken, base.adminOpen = *adminToken, *adminToken == ""
	log, err := base.logger(stderr)
	if err != nil {
		return err
	}
	port := func(first, i int) string {
		if first == 0 {
			return "127.0.0.1:0"
		}
		return "127.0.0.1:" + strconv.Itoa(first+i)
	}

	var servers []*cluster.Server
	defer func() {
		// Stop in reverse, each handing its tenants to the others.
		for i := len(servers) - 1; i >= 0; i-- {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = servers[i].Shutdown(sctx)
			cancel()
		}
	}()
	for i := range *nodes {
		cfg := base
		cfg.NodeName = fmt.Sprintf("node-%d", i+1)
		cfg.APIAddr, cfg.GRPCAddr, cfg.GossipAddr = port(*apiPort, i), port(*grpcPort, i), port(*gossipPort, i)
		cfg.RaftAddr = port(*raftPort, i)
		if i > 0 {
			cfg.Join = []string{servers[0].GossipAddr()}
		}
		srv, err := cluster.StartServer(ctx, cfg.nodeConfig(log.With("node", cfg.NodeName)))
		if err != nil {
			return fmt.Errorf("%s: %w", cfg.NodeName, err)
		}
		servers = append(servers, srv)
	}
	if err := waitForMembers(ctx, servers); err != nil {
		return err
	}
	printDev(stdout, servers)
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	return nil
}

// waitForMembers waits until every node sees all of them and has the
// default plans from the Raft leader.
func waitForMembers(ctx context.Context, servers []*cluster.Server) error {
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

func printDev(w io.Writer, servers []*cluster.Server) {
	fmt.Fprintf(w, "Tollgate dev cluster: %d nodes on loopback (Ctrl-C stops it)\n\n", len(servers))
	fmt.Fprintf(w, "%-8s %-22s %-22s %s\n", "node", "api", "grpc", "gossip")
	for _, s := range servers {
		fmt.Fprintf(w, "%-8s %-22s %-22s %s\n", s.Node.Name(), s.APIAddr(), s.GRPCAddr(), s.GossipAddr())
	}
	fmt.Fprintf(w, "\nTry it (any node answers; \"owner\" names the node that decided):\n\n")
	fmt.Fprintf(w, "  curl -s %s/v1/check -d '{\"tenant\":\"acme\",\"hits\":1,\"limits\":[{\"name\":\"rpm\",\"algorithm\":\"token_bucket\",\"limit\":10,\"period\":\"60s\"}]}'\n", "http://"+servers[0].APIAddr())
	fmt.Fprintf(w, "  curl -s %s/v1/cluster?tenant=acme\n", "http://"+servers[len(servers)-1].APIAddr())
	fmt.Fprintf(w, "  tollgate tenant create acme --plan gold --server http://%s\n", servers[0].APIAddr())
	fmt.Fprintf(w, "  curl -s %s/v1/check -d '{\"tenant\":\"acme\",\"requests\":1,\"tokens\":500}'\n\n", "http://"+servers[0].APIAddr())
}
