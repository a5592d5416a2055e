package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func getCluster(t *testing.T, s *Server, query string) clusterJSON {
	t.Helper()
	resp, err := http.Get("http://" + s.APIAddr() + "/v1/cluster" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out clusterJSON
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/cluster: %d %v", resp.StatusCode, err)
	}
	return out
}

func TestClusterEndpointShowsMembersOwnersAndStates(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 3)
	n1 := c.server("node-1")
	c.admitted(30, dayLimit("acme", 100))

	v := getCluster(t, n1, "?tenant=acme")
	if v.Self != "node-1" || len(v.Members) != 3 || len(v.Ring) != 3 || v.Tenant != "acme" || v.Owner != n1.Node.Owner("acme") {
		t.Fatalf("/v1/cluster: %+v", v)
	}
	for _, m := range v.Members {
		if m.State != "alive" || !m.Ready || m.APIAddr == "" || m.GRPCAddr == "" || m.GossipAddr == "" {
			t.Fatalf("member %+v", m)
		}
	}
	if v.Owner != "node-1" && v.Forwarding.Forwarded == 0 {
		t.Fatalf("forwarding stats: %+v", v.Forwarding)
	}

	c.leave("node-2")
	c.kill("node-3")
	c.waitRing(1)
	states := map[string]string{}
	for _, m := range getCluster(t, n1, "").Members {
		states[m.Name] = m.State
	}
	if states["node-2"] != "left" || states["node-3"] != "dead" || states["node-1"] != "alive" {
		t.Fatalf("states after a leave and a crash: %v", states)
	}
	metrics := metricsText(t, "http://"+n1.APIAddr())
	for _, want := range []string{
		`tollgate_members{state="alive"} 1`, `tollgate_members{state="left"} 1`, `tollgate_members{state="dead"} 1`,
		"tollgate_forward_batch_size_count", "tollgate_forward_duration_seconds_count", "tollgate_store_evictions_total 0",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
