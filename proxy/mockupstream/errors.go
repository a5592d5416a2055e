package mockupstream

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// invalidRequest is the error type the real API gives every 4xx.
const invalidRequest = "invalid_request_error"

// apiError is an error answer in OpenAI's shape:
// {"error":{"message":...,"type":...,"param":...,"code":...}}.
type apiError struct {
	status  int
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"` // the offending request field, or null
	Code    *string `json:"code"`
}

// invalid is a 400 about the request field param ("" for none).
func invalid(param, format string, args ...any) *apiError {
	e := &apiError{status: http.StatusBadRequest, Type: invalidRequest, Message: fmt.Sprintf(format, args...)}
	if param != "" {
		e.Param = &param
	}
	return e
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, struct {
		Error *apiError `json:"error"`
	}{e})
}

// writeJSON sends v as the whole answer. A failed write means the client
// has gone; there is no one to tell.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("mockupstream: answer does not marshal: " + err.Error()) // our own types; a bug
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func ptr[T any](v T) *T { return &v }
