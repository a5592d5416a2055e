package proxy

import (
	"encoding/json"
	"net/http"
)

type modelJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// serveModels lists the models the caller's tenant may use, in OpenAI's
// shape.
func (x *exchange) serveModels(w http.ResponseWriter, r *http.Request) *apiError {
	cfg, t, apiErr := x.admit(w, r)
	if apiErr != nil {
		return apiErr
	}
	plan, _ := cfg.TenantPlan(t.GetId())
	out := struct {
		Object string      `json:"object"`
		Data   []modelJSON `json:"data"`
	}{Object: "list", Data: []modelJSON{}}
	for _, m := range cfg.Models() {
		if !modelAllowed(t, plan, m) {
			continue
		}
		p, _ := cfg.ModelProvider(m)
		// Created stays 0: providers do not tell when a model was made.
		out.Data = append(out.Data, modelJSON{ID: m, Object: "model", OwnedBy: p.GetName()})
	}
	w.Header().Set("Content-Type", "application/json")
	x.status = http.StatusOK
	_ = json.NewEncoder(w).Encode(out)
	return nil
}
