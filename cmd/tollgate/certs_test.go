package main

import (
	"bytes"
	"io"
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
	for _, args := range [][]string{{"certs"}, {"certs", "--nodes", "a", "--valid", "-1h"}} {
		if err := run(t.Context(), args, env(nil), io.Discard, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
