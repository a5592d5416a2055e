package main

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/bench"
)

// runBenchBinary runs the built tollgate's bench and decodes its JSON
// report.
func runBenchBinary(t *testing.T, args ...string) (*bench.Report, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.Command(binary, append([]string{"bench", "--quiet", "--json", path}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tollgate bench %v: %v\n%s", args, err, out)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	return &rep, string(out)
}

// Not parallel: the restarted node takes back the ports the kernel gave it
// for :0, which stay free for the second between the kill and the restart;
// another test binding :0 meanwhile could take one. And the run must be
// free of errors again within a second or two of the restart, a timing that
// a 2-core machine busy with other clusters can miss.
func TestBenchSpawnsAClusterAndSchedulesChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("starts clusters of tollgate processes")
	}
	rep, out := runBenchBinary(t, "--spawn", "3", "--scenario", "check-http", "--rate", "200", "--duration", "6s",
		"--tenants", "20", "--limit", "50", "--chaos", "kill@2s,restart@3s", "--slo", "error-rate=100%")
	if len(rep.Events) != 2 || rep.Events[0].Kind != "kill" || rep.Events[1].Kind != "restart" {
		t.Fatalf("events: %+v\n%s", rep.Events, out)
	}
	for i, e := range rep.Events {
		if e.Error != "" || !strings.Contains(e.Detail, "p99") || math.Abs(e.At-float64(2+i)) > 0.5 {
			t.Fatalf("event %+v", e)
		}
	}
	// The killed node's share of the load fails until it is back on its
	// addresses; the rest is answered.
	if rep.Requests != 1200 || rep.Errors == 0 || rep.Errors > 400 || rep.Allowed == 0 || len(rep.Timeline) < 6 {
		t.Fatalf("report: %d requests, %d errors %v, %d allowed, %d seconds", rep.Requests, rep.Errors, rep.ErrorsByKind, rep.Allowed, len(rep.Timeline))
	}
	if last := rep.Timeline[len(rep.Timeline)-2]; last.Errors != 0 {
		t.Fatalf("errors after the restart: %+v", last)
	}
}

func TestBenchDrivesTheGatewayOfASpawnedCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts clusters of tollgate processes")
	}
	rep, out := runBenchBinary(t, "--spawn", "3", "--scenario", "gateway", "--rate", "100", "--duration", "3s",
		"--tenants", "5", "--limit", "20", "--zipf", "0", "--slo", "error-rate=0%", "--slo", "overshoot=0%")
	// Five tenants at 20 a minute: about 100 of the 300 admitted, the rest
	// 429, none failed, and no tenant over its limit.
	if rep.Errors != 0 || rep.Allowed < 100 || rep.Allowed > 105 || rep.Denied != 300-rep.Allowed {
		t.Fatalf("gateway run: %d allowed, %d denied, %d errors %v\n%s", rep.Allowed, rep.Denied, rep.Errors, rep.ErrorsByKind, out)
	}
}

// The same workload over a cluster whose peer plane and Raft run over
// mutual TLS: every forwarded check answered, no tenant over its limit.
func TestBenchSpawnsATLSCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts clusters of tollgate processes")
	}
	logs := t.TempDir()
	rep, out := runBenchBinary(t, "--spawn", "3", "--spawn-tls", "--spawn-logs", logs, "--scenario", "check-grpc", "--rate", "200",
		"--duration", "2s", "--tenants", "5", "--limit", "20", "--zipf", "0", "--slo", "error-rate=0%", "--slo", "overshoot=0%")
	if rep.Errors != 0 || rep.Requests != 400 || rep.Allowed < 100 || rep.Allowed > 105 {
		t.Fatalf("TLS run: %d requests, %d allowed, %d errors %v\n%s", rep.Requests, rep.Allowed, rep.Errors, rep.ErrorsByKind, out)
	}
	entries, err := os.ReadDir(logs)
	if err != nil || len(entries) < 3 {
		t.Fatalf("spawn logs: %v %v", entries, err)
	}
	tls := 0
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(logs, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "peer plane and raft over mutual TLS") {
			tls++
		}
	}
	if tls != 3 {
		t.Fatalf("%d of the 3 nodes said they run the peer plane over TLS (logs in %v)", tls, entries)
	}
}

func TestBenchExitsOneWhenAGateFails(t *testing.T) {
	t.Parallel()
	api := fakeCheckAPI(t)
	cmd := exec.Command(binary, "bench", "--quiet", "--scenario", "check-http", "--targets", strings.TrimPrefix(api.URL, "http://"),
		"--rate", "100", "--duration", "300ms", "--slo", "p99=1ns")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "VIOLATED") {
		t.Fatalf("exit %v, want status 1 with a VIOLATED line:\n%s", err, out)
	}
}

// Not parallel: once, beside other clusters under -race -count=3, the
// join and leave let the busiest tenant through 117 times against the 106
// its limit allowed (overshoot 10.4%). That points at the hand-off under
// load, in cluster/, not at this test; until it is understood this runs
// alone, as it always did, rather than fail the suite at random.
func TestBenchJoinsAndLeavesNodesOverGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts clusters of tollgate processes")
	}
	rep, out := runBenchBinary(t, "--spawn", "3", "--scenario", "check-grpc", "--rate", "200", "--duration", "4s",
		"--tenants", "20", "--chaos", "join@1s,leave@2s", "--slo", "error-rate=0%", "--slo", "overshoot=0%")
	if len(rep.Events) != 2 || rep.Events[0].Kind != "join" || rep.Events[1].Kind != "leave" ||
		rep.Events[1].Node != rep.Events[0].Node || rep.Events[1].Error != "" {
		t.Fatalf("events: %+v\n%s", rep.Events, out)
	}
	// A node that joins and leaves gracefully moves tenants with their
	// counters: no request fails and nobody gets more than the limit.
	if rep.Requests != 800 || rep.Errors != 0 {
		t.Fatalf("%d requests, %d errors %v", rep.Requests, rep.Errors, rep.ErrorsByKind)
	}
}
