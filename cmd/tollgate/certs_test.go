package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/cluster/peer"
)

func TestCertsWritesWhatTheTLSFlagsLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"certs", "--dir", dir, "--nodes", "n1,n2"}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2"} {
		if _, err := peer.LoadTLS(peer.Files(dir, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if !strings.Contains(out.String(), n+": --tls-cert ") {
			t.Errorf("no flags printed for %s in %q", n, out.String())
		}
	}
	// Again in the same dir, for a node that joins later: the same CA
	// signs it, so the others trust it.
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), []string{"certs", "--dir", dir, "--nodes", "n3"}, env(nil), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); !bytes.Equal(again, ca) {
		t.Fatal("the second run replaced the CA")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	raw, err := os.ReadFile(filepath.Join(dir, "n3.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("n3's certificate from the second run: %v", err)
	}
	// A CA without its key issues nothing.
	keyless := t.TempDir()
	if err := os.WriteFile(filepath.Join(keyless, "ca.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), []string{"certs", "--dir", keyless, "--nodes", "n4"}, env(nil), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "without its key") {
		t.Fatalf("certs beside a CA without its key: %v", err)
	}
	for _, args := range [][]string{{"certs"}, {"certs", "--nodes", "a", "--valid", "-1h"}} {
		if err := run(t.Context(), args, env(nil), io.Discard, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
