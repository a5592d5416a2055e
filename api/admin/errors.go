package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrBadServer is a server that is neither host:port nor an http(s) URL.
var ErrBadServer = errors.New("not host:port or an http(s) URL")

// ErrRefused is a node's address where nothing listens: the node is not
// running, or runs elsewhere.
var ErrRefused = errors.New("connection refused")

// ErrNoAnswer is a node that did not answer in time: the context's
// deadline or the client's timeout passed first.
var ErrNoAnswer = errors.New("no answer")

// Error is an answer other than 2xx from the admin API.
type Error struct {
	Status  int
	Code    string // the server's error code, such as not_found
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

// IsNotFound reports whether err is the API's answer that what was asked
// for does not exist.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// answerError reads the API's {"error":{...}} body, or makes do with the
// status for a body that is not one (a proxy's, say).
func answerError(status int, raw []byte) *Error {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error.Message != "" {
		return &Error{Status: status, Code: body.Error.Code, Message: body.Error.Message}
	}
	return &Error{Status: status, Message: strings.ToLower(http.StatusText(status))}
}
