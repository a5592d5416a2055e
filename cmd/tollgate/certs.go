package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tollgate/tollgate/cluster/peer"
)

// runCerts writes a certificate for each named node, signed by the CA in
// the directory (made there the first time): enough for a first cluster,
// nodes added to it later, tollgate dev and the bench. A real cluster uses
// its own PKI (README, "Securing a cluster").
func runCerts(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "tollgate-certs", "`DIR` to write ca.pem and ca-key.pem (unless there already: that CA signs) and, for each node, NODE.pem and NODE-key.pem into")
	var nodes commaList
	fs.Var(&nodes, "nodes", "comma-separated node names (their --node-name), one certificate each")
	valid := fs.Duration("valid", 365*24*time.Hour, "how long the certificates are valid")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: tollgate certs --nodes n1,n2,n3 [--dir DIR]\n\nWrites a certificate for each node, for --tls-cert, --tls-key and --tls-ca, signed by the CA in DIR\n(ca.pem and ca-key.pem, made there the first time). Run again with the same DIR for a node that joins later.\nca-key.pem issues certificates: copy it to no node.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case len(nodes) == 0:
		return errors.New("nodes: name at least one node")
	case *valid <= 0:
		return fmt.Errorf("valid: must be > 0, got %s", *valid)
	}
	if err := peer.WriteCerts(*dir, nodes, *valid); err != nil {
		return err
	}
	_, _, ca := peer.Files(*dir, "")
	fmt.Fprintf(stdout, "CA: %s\n", ca)
	for _, n := range nodes {
		cert, key, _ := peer.Files(*dir, n)
		fmt.Fprintf(stdout, "%s: --tls-cert %s --tls-key %s --tls-ca %s\n", n, cert, key, ca)
	}
	return nil
}
