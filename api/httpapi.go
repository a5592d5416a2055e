package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/quota"
)

// MaxBodyBytes bounds a request body on the API address.
const MaxBodyBytes = 1 << 20

// httpAPI is the HTTP JSON API of one node.
type httpAPI struct {
	node  Node
	admin Admin
	auth  Auth
	log   *slog.Logger
}

// HTTPHandler serves the node's HTTP JSON API: POST /v1/check,
// POST /v1/release, GET /v1/cluster, the admin API under /admin/v1/
// (over admin, for the holders of auth.Admin; the checks for those of
// auth.Check), GET /healthz, GET /readyz and
// GET /metrics.
func HTTPHandler(node Node, admin Admin, auth Auth, log *slog.Logger) http.Handler {
	h := &httpAPI{node: node, admin: admin, auth: auth, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/check", h.handleCheck)
	mux.HandleFunc("POST /v1/release", h.handleRelease)
	mux.HandleFunc("GET /v1/cluster", h.handleCluster)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": node.Name()})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !node.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "node": node.Name()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "node": node.Name()})
	})
	h.adminRoutes(mux)
	reg := node.Registry()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

func (h *httpAPI) handleCheck(w http.ResponseWriter, r *http.Request) {
	if !h.checkAllowed(w, r) {
		return
	}
	req, err := DecodeCheck(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		h.writeError(w, err)
		return
	}
	resp, err := h.node.Check(r.Context(), req)
	if err != nil {
		h.writeError(w, err)
		return
	}
	writeJSONHeader(w, http.StatusOK)
	if err := writeCheckResponse(w, resp); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		slog.Debug("writing response", "err", err)
	}
}

func (h *httpAPI) handleRelease(w http.ResponseWriter, r *http.Request) {
	if !h.checkAllowed(w, r) {
		return
	}
	req, err := decodeRelease(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err == nil {
		err = h.node.Release(r.Context(), req)
	}
	if err != nil {
		h.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"released": true})
}

type errorJSON struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// writeError maps an error to a status: bad input is the client's (400,
// 413), anything else is ours (500, logged).
func (h *httpAPI) writeError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	var field *quota.FieldError
	switch {
	case errors.As(err, &tooBig):
		writeJSON(w, http.StatusRequestEntityTooLarge, errorJSON{errorBody{
			Code: "body_too_large", Message: "request body exceeds 1 MiB"}})
	case errors.Is(err, errSlowBody):
		writeJSON(w, http.StatusRequestTimeout, errorJSON{errorBody{Code: "request_timeout", Message: err.Error()}})
	case errors.As(err, &field):
		writeJSON(w, http.StatusBadRequest, errorJSON{errorBody{
			Code: "invalid_argument", Message: field.Error(), Field: field.Field}})
	case errors.Is(err, quota.ErrUnknownTenant):
		writeJSON(w, http.StatusNotFound, errorJSON{errorBody{Code: "unknown_tenant", Message: err.Error()}})
	case errors.Is(err, quota.ErrTenantSuspended):
		writeJSON(w, http.StatusForbidden, errorJSON{errorBody{Code: "tenant_suspended", Message: err.Error()}})
	case errors.Is(err, quota.ErrNoQuorum), errors.Is(err, quota.ErrNoRaft):
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorJSON{errorBody{Code: "no_quorum", Message: err.Error()}})
	case statusHTTP[status.Code(err)] != 0:
		// A refusal from the FSM or the owner, already in gRPC terms.
		st := status.Convert(err)
		writeJSON(w, statusHTTP[st.Code()], errorJSON{errorBody{Code: snakeCode(st.Code()), Message: st.Message()}})
	case errors.Is(err, quota.ErrOwnerUnavailable):
		writeJSON(w, http.StatusServiceUnavailable, errorJSON{errorBody{
			Code: "owner_unavailable", Message: err.Error()}})
	case errors.Is(err, quota.ErrOverloaded):
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorJSON{errorBody{
			Code: "overloaded", Message: err.Error()}})
	case errors.Is(err, quota.ErrNotReady):
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorJSON{errorBody{
			Code: "not_ready", Message: err.Error()}})
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		writeJSON(w, http.StatusGatewayTimeout, errorJSON{errorBody{
			Code: "deadline_exceeded", Message: "no answer in time"}})
	default:
		h.log.Error("request failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, errorJSON{errorBody{
			Code: "internal", Message: "internal error"}})
	}
}

// jsonContentType is the Content-Type of JSON answers, shared rather than
// allocated by Header().Set for each (net/http only reads it).
var jsonContentType = []string{"application/json"}

// writeJSONHeader starts a JSON answer with status.
func writeJSONHeader(w http.ResponseWriter, status int) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONHeader(w, status)
	if err := json.NewEncoder(w).Encode(v); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		slog.Debug("writing response", "err", err)
	}
}

// statusHTTP maps the gRPC codes the API returns for the client's mistakes
// to HTTP statuses.
var statusHTTP = map[codes.Code]int{
	codes.InvalidArgument:    http.StatusBadRequest,
	codes.NotFound:           http.StatusNotFound,
	codes.AlreadyExists:      http.StatusConflict,
	codes.FailedPrecondition: http.StatusConflict,
}

func snakeCode(c codes.Code) string {
	switch c {
	case codes.InvalidArgument:
		return "invalid_argument"
	case codes.NotFound:
		return "not_found"
	case codes.AlreadyExists:
		return "already_exists"
	}
	return "conflict"
}
