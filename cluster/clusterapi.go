package cluster

import (
	"net/http"
	"sort"

	"github.com/tollgate/tollgate/cluster/gossip"
)

type clusterJSON struct {
	Self       string          `json:"self"`
	Members    []gossip.Member `json:"members"`
	Ring       []string        `json:"ring"`
	Tenant     string          `json:"tenant,omitempty"`
	Owner      string          `json:"owner,omitempty"`
	Forwarding forwardingJSON  `json:"forwarding"`
}

type forwardingJSON struct {
	BatchWindowSeconds float64 `json:"batch_window_seconds"`
	BatchMax           int     `json:"batch_max"`
	TimeoutSeconds     float64 `json:"timeout_seconds"`
	Forwarded          float64 `json:"forwarded"`
	ForwardErrors      float64 `json:"forward_errors"`
	Batches            uint64  `json:"batches"`
	MeanBatchSize      float64 `json:"mean_batch_size"`
	Degraded           float64 `json:"degraded"`
	HandoffSent        float64 `json:"handoff_sent"`
	HandoffReceived    float64 `json:"handoff_received"`
}

// handleCluster serves GET /v1/cluster[?tenant=ID]: this node's view of the
// members, the ring, and forwarding statistics.
func (n *Node) handleCluster(w http.ResponseWriter, r *http.Request) {
	out := clusterJSON{Self: n.name, Ring: n.currentRing().Nodes(), Forwarding: n.forwardingStats()}
	out.Members = n.Members()
	sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].Name < out.Members[j].Name })
	if t := r.URL.Query().Get("tenant"); t != "" {
		out.Tenant, out.Owner = t, n.Owner(t)
	}
	writeJSON(w, http.StatusOK, out)
}
