package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"unicode/utf8"

	"github.com/tollgate/tollgate/quota"
)

// inference is what the gateway reads of a request body; the body itself
// goes upstream unchanged (see upstreamBody).
type inference struct {
	Model               string          `json:"model"`
	Stream              bool            `json:"stream"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	Messages            []message       `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	Input               json.RawMessage `json:"input"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`

	// fields is the body's top-level object as checkKeys read it, for
	// upstreamBody to edit without parsing the body again.
	fields map[string]json.RawMessage
}

type message struct {
	Content json.RawMessage `json:"content"`
}

// parseInference decodes the fields the gateway needs and checks them.
func parseInference(body []byte, embeddings bool) (*inference, *apiError) {
	fields, apiErr := checkKeys(body)
	if apiErr != nil {
		return nil, apiErr
	}
	in := inference{fields: fields}
	if err := json.Unmarshal(body, &in); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, invalid(typeErr.Field, "Invalid type for '"+typeErr.Field+"': want "+quota.KindName(typeErr.Type.Kind())+", got "+typeErr.Value+".")
		}
		return nil, errBadJSON
	}
	switch {
	case in.Model == "":
		return nil, errNoModel
	case in.MaxTokens != nil && (*in.MaxTokens < 0 || *in.MaxTokens > maxAnswerTokens):
		return nil, invalid("max_tokens", fmt.Sprintf("max_tokens must be between 0 and %d.", maxAnswerTokens))
	case in.MaxCompletionTokens != nil && (*in.MaxCompletionTokens < 0 || *in.MaxCompletionTokens > maxAnswerTokens):
		return nil, invalid("max_completion_tokens", fmt.Sprintf("max_completion_tokens must be between 0 and %d.", maxAnswerTokens))
	case embeddings && in.Stream:
		return nil, invalid("stream", "Embeddings cannot be streamed.")
	}
	return &in, nil
}

// maxAnswerTokens bounds max_tokens and max_completion_tokens: far beyond
// any model's answer, and small enough that the estimate (prompt plus
// answer) never overflows.
const maxAnswerTokens = 1 << 31

// checkKeys refuses a body whose top-level object names a key twice, in
// any case: encoding/json matches keys without regard to case and keeps
// the last, while an upstream may read the first ("model":"a","Model":"b"
// would be checked and priced as one model and served as the other). It
// returns the object's fields as read; nil if the body is not a well-formed
// object, which the decoder proper then reports.
func checkKeys(body []byte) (map[string]json.RawMessage, *apiError) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil
	}
	fields := map[string]json.RawMessage{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil
		}
		key, _ := tok.(string)
		if folded := strings.ToLower(key); seen[folded] {
			return nil, invalid(key, "The key '"+key+"' appears more than once (in any case).")
		} else {
			seen[folded] = true
		}
		var value json.RawMessage
		if dec.Decode(&value) != nil {
			return nil, nil
		}
		fields[key] = value
	}
	return fields, nil
}

// charsPerToken is the estimate's rule of thumb for English text with
// OpenAI's tokenizers; the real count comes from the upstream's usage.
const charsPerToken = 4

// promptTokens estimates the prompt: the text of every message, prompt or
// input, at about four characters a token (token arrays count exactly).
func (in *inference) promptTokens() int64 {
	var chars, tokens int64
	for _, m := range in.Messages {
		c, t := textSize(m.Content)
		chars, tokens = chars+c, tokens+t
	}
	for _, raw := range []json.RawMessage{in.Prompt, in.Input} {
		c, t := textSize(raw)
		chars, tokens = chars+c, tokens+t
	}
	return max(tokens+(chars+charsPerToken-1)/charsPerToken, 1)
}

// textSize measures a content value: a string, an array of strings, of
// parts with "text", of token ids, or of arrays of token ids. It returns
// the characters of text and the count of token ids.
func textSize(raw json.RawMessage) (chars, tokens int64) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, 0
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return int64(utf8.RuneCountInString(s)), 0
		}
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return 0, 0
		}
		for _, it := range items {
			if c, t := textSize(it); c > 0 || t > 0 {
				chars, tokens = chars+c, tokens+t
			} else if len(it) > 0 && (it[0] == '-' || (it[0] >= '0' && it[0] <= '9')) {
				tokens++
			}
		}
	case '{':
		var part struct {
			Text json.RawMessage `json:"text"`
		}
		if json.Unmarshal(raw, &part) == nil {
			return textSize(part.Text)
		}
	}
	return chars, tokens
}

// completionTokens is the most the answer may take: the request's
// max_completion_tokens or max_tokens, else the default.
func (in *inference) completionTokens(dflt int64) int64 {
	switch {
	case in.MaxCompletionTokens != nil:
		return *in.MaxCompletionTokens
	case in.MaxTokens != nil:
		return *in.MaxTokens
	}
	return dflt
}

// upstreamBody is the body sent upstream: the client's, unchanged, except
// that a streaming request asks for usage in its last chunk
// (stream_options.include_usage), which the gateway settles with. That
// body is re-encoded: the keys come in sorted order, and values keep their
// meaning (strings may be escaped differently).
func upstreamBody(body []byte, in *inference) ([]byte, error) {
	if !in.Stream || (in.StreamOptions != nil && in.StreamOptions.IncludeUsage) {
		return body, nil
	}
	fields := maps.Clone(in.fields)
	opts := map[string]json.RawMessage{}
	if raw, ok := fields["stream_options"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if err := json.Unmarshal(raw, &opts); err != nil {
			return nil, err
		}
	}
	opts["include_usage"] = json.RawMessage("true")
	raw, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	fields["stream_options"] = raw
	return json.Marshal(fields)
}
