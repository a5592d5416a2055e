package mockupstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"unicode/utf8"
)

// maxBody caps a request body, so a runaway client cannot exhaust the
// memory of the test process hosting the server.
const maxBody = 10 << 20

// commonRequest holds the fields chat and text completions share.
type commonRequest struct {
	MaxTokens           *int `json:"max_tokens"`
	MaxCompletionTokens *int `json:"max_completion_tokens"`
	Stream              bool `json:"stream"`
}

// decodeBody reads a JSON request into each of targets and returns the
// model it names, which every endpoint requires. Decoding into separate
// structs rather than one with embedded parts keeps the field paths in type
// errors, the answer's param, equal to the JSON names.
func decodeBody(w http.ResponseWriter, r *http.Request, targets ...any) (model string, _ *apiError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "", &apiError{status: http.StatusRequestEntityTooLarge, Type: invalidRequest,
				Message: "request body is larger than 10 MiB"}
		}
		return "", invalid("", "could not read the request body: %v", err)
	}
	var m struct {
		Model string `json:"model"`
	}
	for _, v := range append(targets, &m) {
		if err := json.Unmarshal(body, v); err != nil {
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) && typeErr.Field != "" {
				return "", invalid(typeErr.Field, "'%s' cannot be a JSON %s", typeErr.Field, typeErr.Value)
			}
			return "", invalid("", "We could not parse the JSON body of your request: %v", err)
		}
	}
	if m.Model == "" {
		return "", invalid("model", "you must provide a model parameter")
	}
	return m.Model, nil
}

// content is a chat message's content: a string, null, or an array of
// parts, of which only the text parts count.
type content string

func (c *content) UnmarshalJSON(b []byte) error {
	switch firstByte(b) {
	case 'n':
		return nil
	case '"':
		return json.Unmarshal(b, (*string)(c))
	case '[':
		var parts []struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(b, &parts); err != nil {
			return err
		}
		var all []byte
		for _, p := range parts {
			all = append(all, p.Text...)
		}
		*c = content(all)
		return nil
	}
	return typeError(b, reflect.TypeFor[content]())
}

// input is one prompt or embedding input: text, or token IDs that the
// caller tokenized.
type input struct {
	text string
	ids  []int64
}

// inputs is a prompt or embedding input as the real API takes it: a
// string, an array of strings, an array of token IDs, or an array of
// arrays of token IDs. null or absent leaves it empty.
type inputs []input

func (in *inputs) UnmarshalJSON(b []byte) error {
	switch firstByte(b) {
	case 'n':
		return nil
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*in = inputs{{text: s}}
		return nil
	case '[':
		return in.unmarshalArray(b)
	}
	return typeError(b, reflect.TypeFor[inputs]())
}

func (in *inputs) unmarshalArray(b []byte) error {
	var ids []int64
	if json.Unmarshal(b, &ids) == nil && len(ids) > 0 {
		*in = inputs{{ids: ids}}
		return nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(b, &elems); err != nil {
		return err
	}
	out := make(inputs, 0, len(elems))
	for _, e := range elems {
		var item input
		switch firstByte(e) {
		case '"':
			if err := json.Unmarshal(e, &item.text); err != nil {
				return err
			}
		case '[':
			if err := json.Unmarshal(e, &item.ids); err != nil {
				return err
			}
		default:
			return typeError(e, reflect.TypeFor[input]())
		}
		out = append(out, item)
	}
	*in = out
	return nil
}

// promptTokens is the mock's tokenizer: a token per 4 characters of text
// (rounded up, over all the texts together), plus the token IDs given as
// such, and never less than 1.
func promptTokens(texts []string, ids int) int {
	chars := 0
	for _, t := range texts {
		chars += utf8.RuneCountInString(t)
	}
	return max(1, (chars+3)/4+ids)
}

// tokens counts ins with promptTokens.
func (ins inputs) tokens() int {
	texts, ids := make([]string, 0, len(ins)), 0
	for _, in := range ins {
		texts = append(texts, in.text)
		ids += len(in.ids)
	}
	return promptTokens(texts, ids)
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// typeError is what encoding/json says of a value of the wrong JSON kind;
// json fills in the field's name on the way out, which becomes the
// answer's param.
func typeError(b []byte, t reflect.Type) error {
	var kind string
	switch firstByte(b) {
	case 't', 'f':
		kind = "bool"
	case '{':
		kind = "object"
	case '"':
		kind = "string"
	case '[':
		kind = "array"
	default:
		kind = "number"
	}
	return &json.UnmarshalTypeError{Value: kind, Type: t}
}
