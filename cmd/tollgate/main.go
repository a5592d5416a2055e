// Command tollgate runs and operates Tollgate nodes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usageText = `tollgate: a distributed rate-limit and quota cluster

Usage:
  tollgate serve [flags]   run one node (tollgate serve -h lists the flags)
  tollgate dev [flags]     run a local N-node cluster in this process, with a mock
                           upstream and demo tenants (tollgate dev -h)
  tollgate mock-upstream   run an OpenAI-compatible fake upstream (tollgate mock-upstream -h)
  tollgate bench [flags]   load a cluster (or start one) and check latency SLOs (tollgate bench -h)
  tollgate certs [flags]   write node certificates for --tls-*, signed by a CA made the first time (tollgate certs -h)
  tollgate version         show the version, the revision it was built from and the Go that built it (-o json)
  tollgate help            show this text

Admin commands, for a running cluster (tollgate COMMAND -h lists verbs and flags):
  tollgate plan VERB       list, get, create, set or delete plans, the tiers of limits
  tollgate tenant VERB     list, get, create, update, suspend, resume or delete tenants
  tollgate key VERB        create, list or revoke tenants' API keys
  tollgate provider VERB   list, get, set or delete upstream LLM APIs
  tollgate rls VERB        list, get, set (from envoyproxy/ratelimit YAML) or delete Envoy rate limit domains
  tollgate usage TENANT    show a tenant's usage in a month
  tollgate status          show a node's Raft state and the cluster's members
They call --server (default env TOLLGATE_SERVER, else http://127.0.0.1:8081)
with the token in TOLLGATE_ADMIN_TOKEN, and print tables, or JSON with -o json.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		os.Exit(1)
	}
}

// run dispatches a subcommand; ctx ends on SIGINT or SIGTERM.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return errors.New("missing subcommand")
	}
	switch args[0] {
	case "serve":
		cfg, err := loadConfig(args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stderr)
	case "dev":
		return devCluster(ctx, args[1:], getenv, stdout, stderr)
	case "mock-upstream":
		return runMockUpstream(ctx, args[1:], getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], getenv, stdout, stderr)
	case "certs":
		return runCerts(args[1:], stdout, stderr)
	case "version":
		return runVersion(args[1:], stdout, stderr)
	case "plan", "tenant", "key", "provider", "rls", "usage", "status":
		return runAdmin(ctx, args[0], args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	fmt.Fprint(stderr, usageText)
	return fmt.Errorf("unknown subcommand %q", args[0])
}
