package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// apiError is an error answer in OpenAI's shape:
// {"error":{"message","type","param","code"}}.
type apiError struct {
	status  int
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

func newError(status int, typ, code, message string) *apiError {
	e := &apiError{status: status, Message: message, Type: typ}
	if code != "" {
		e.Code = &code
	}
	return e
}

// invalid is a 400 about one field of the request body.
func invalid(param, message string) *apiError {
	e := newError(http.StatusBadRequest, "invalid_request_error", "", message)
	if param != "" {
		e.Param = &param
	}
	return e
}

// Error types and codes, as OpenAI's API uses them where it has one.
const (
	typeInvalidRequest = "invalid_request_error"
	typePermission     = "permission_error"
	typeServer         = "server_error"
)

var (
	errNoKey      = newError(http.StatusUnauthorized, typeInvalidRequest, "invalid_api_key", "You didn't provide an API key: send it as 'Authorization: Bearer tg_...' or 'x-api-key'.")
	errBadKey     = newError(http.StatusUnauthorized, typeInvalidRequest, "invalid_api_key", "Incorrect, revoked or unknown API key provided.")
	errSuspended  = newError(http.StatusForbidden, typePermission, "tenant_suspended", "This tenant is suspended; contact the gateway's operators.")
	errOrigin     = newError(http.StatusForbidden, typePermission, "origin_not_allowed", "This origin is not allowed for this tenant.")
	errBadJSON    = invalid("", "The request body is not valid JSON.")
	errNoModel    = invalid("model", "You must provide a model parameter.")
	errNotFound   = newError(http.StatusNotFound, typeInvalidRequest, "unknown_url", "Unknown request URL.")
	errBadMethod  = newError(http.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed", "Method not allowed for this URL.")
	errNotReady   = newError(http.StatusServiceUnavailable, typeServer, "service_unavailable", "The gateway cannot reach the tenant's limits right now; retry shortly.")
	errOverloaded = newError(http.StatusServiceUnavailable, typeServer, "overloaded", "This gateway node is overloaded (too many requests waiting to be settled, or too many concurrency leases held on the tenant's owner); retry shortly, or on another node.")
	errUpstream   = newError(http.StatusBadGateway, typeServer, "upstream_error", "The upstream model provider failed to answer.")
	errUpstreamTO = newError(http.StatusGatewayTimeout, typeServer, "upstream_timeout", "The upstream model provider did not answer in time.")
)

// tooLarge answers a body over the gateway's limit.
func tooLarge(limit int64) *apiError {
	return newError(http.StatusRequestEntityTooLarge, typeInvalidRequest, "request_too_large",
		fmt.Sprintf("The request body is over the gateway's limit of %d bytes.", limit))
}

// writeError answers with e in OpenAI's shape.
func writeError(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(struct {
		Error *apiError `json:"error"`
	}{e})
}

func codeOf(e *apiError) string {
	if e.Code != nil {
		return *e.Code
	}
	return e.Type
}
