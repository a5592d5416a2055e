package api

import (
	"net/http"

	"github.com/tollgate/tollgate/cluster"
)

type clusterJSON struct {
	cluster.Overview
	Tenant string `json:"tenant,omitempty"`
	Owner  string `json:"owner,omitempty"`
}

// handleCluster serves GET /v1/cluster[?tenant=ID]: this node's view of the
// members, the ring, and forwarding statistics.
func (h *httpAPI) handleCluster(w http.ResponseWriter, r *http.Request) {
	out := clusterJSON{Overview: h.node.Overview()}
	if t := r.URL.Query().Get("tenant"); t != "" {
		out.Tenant, out.Owner = t, h.node.Owner(t)
	}
	writeJSON(w, http.StatusOK, out)
}
