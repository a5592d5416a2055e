package mockupstream

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

type chatRequest struct {
	Messages []struct {
		Content content `json:"content"`
	} `json:"messages"`
}

type textRequest struct {
	Prompt inputs `json:"prompt"`
}

// completion is the answer the server has settled on for one chat or text
// completion request, whole or streamed.
type completion struct {
	chat    bool // chat.completion rather than text_completion
	id      string
	model   string
	created int64
	prompt  int    // prompt tokens
	tokens  int    // completion tokens: words of the answer
	finish  string // "length" when the request's limit cut the answer short, else "stop"
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	var common commonRequest
	var req chatRequest
	model, e := decodeBody(w, r, &common, &req)
	if e != nil {
		writeError(w, e)
		return
	}
	if len(req.Messages) == 0 {
		writeError(w, invalid("messages", "'messages' must contain at least one message"))
		return
	}
	texts := make([]string, 0, len(req.Messages))
	for _, m := range req.Messages {
		texts = append(texts, string(m.Content))
	}
	s.complete(w, r, true, model, common, promptTokens(texts, 0))
}

func (s *Server) textCompletions(w http.ResponseWriter, r *http.Request) {
	var common commonRequest
	var req textRequest
	model, e := decodeBody(w, r, &common, &req)
	if e != nil {
		writeError(w, e)
		return
	}
	if len(req.Prompt) == 0 {
		writeError(w, invalid("prompt", "you must provide a non-empty prompt"))
		return
	}
	s.complete(w, r, false, model, common, req.Prompt.tokens())
}

// complete answers a decoded chat or text completion request.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, chat bool, model string, req commonRequest, prompt int) {
	tokens, finish, e := s.completionTokens(req)
	if e != nil {
		writeError(w, e)
		return
	}
	if !s.admit(w, r) {
		return
	}
	c := completion{chat: chat, model: model, created: time.Now().Unix(),
		prompt: prompt, tokens: tokens, finish: finish}
	c.id = "cmpl-mock-" + strconv.FormatInt(s.ids.Add(1), 10)
	if chat {
		c.id = "chat" + c.id
	}
	if req.Stream {
		s.stream(w, r, c)
		return
	}
	writeJSON(w, http.StatusOK, c.whole())
	s.report(c.prompt, c.tokens)
}

// completionTokens is the answer's length: the configured count, lowered
// by the request's max_tokens or max_completion_tokens.
func (s *Server) completionTokens(req commonRequest) (n int, finish string, _ *apiError) {
	n, finish = s.opts.CompletionTokens, "stop"
	for _, limit := range []struct {
		param string
		value *int
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		switch {
		case limit.value == nil:
		case *limit.value < 1:
			return 0, "", invalid(limit.param, "'%s' must be at least 1, got %d", limit.param, *limit.value)
		case *limit.value < n:
			n, finish = *limit.value, "length"
		}
	}
	return n, finish, nil
}

// The JSON shapes of completion answers and stream chunks. One choice type
// serves both APIs: chat fills message (whole) or delta (chunk), text
// completions fill text.
type (
	answerJSON struct {
		ID      string       `json:"id"`
		Object  string       `json:"object"`
		Created int64        `json:"created"`
		Model   string       `json:"model"`
		Choices []choiceJSON `json:"choices"`
		Usage   *usageJSON   `json:"usage"` // null on every stream chunk but the last, as in the real API
	}
	choiceJSON struct {
		Index        int          `json:"index"`
		Message      *messageJSON `json:"message,omitempty"`
		Delta        *messageJSON `json:"delta,omitempty"`
		Text         *string      `json:"text,omitempty"`
		Logprobs     *struct{}    `json:"logprobs"` // always null
		FinishReason *string      `json:"finish_reason"`
	}
	messageJSON struct {
		Role    string `json:"role,omitempty"`
		Content string `json:"content"`
	}
	usageJSON struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	}
)

// word is the i-th token of the answer. Each but the first carries its
// leading space, like a real tokenizer's, so the streamed deltas add up to
// the whole answer's text.
func word(i int) string {
	if i == 0 {
		return "tok"
	}
	return " tok"
}

// whole is the non-streamed answer.
func (c completion) whole() answerJSON {
	text := strings.TrimSpace(strings.Repeat(" tok", c.tokens))
	a := c.frame(false, c.choice(false, text, &c.finish))
	a.Usage = c.usage()
	return a
}

// frame is a whole answer or a stream chunk with c's identity and the
// given choices.
func (c completion) frame(chunk bool, choices ...choiceJSON) answerJSON {
	object := "text_completion" // the real API names text chunks so too
	switch {
	case c.chat && chunk:
		object = "chat.completion.chunk"
	case c.chat:
		object = "chat.completion"
	}
	if choices == nil {
		choices = []choiceJSON{} // [], not null, in the final usage chunk
	}
	return answerJSON{ID: c.id, Object: object, Created: c.created, Model: c.model, Choices: choices}
}

// choice carries text as c's API does: as the assistant's message (whole),
// as a delta (chunk), or as text.
func (c completion) choice(chunk bool, text string, finish *string) choiceJSON {
	switch {
	case c.chat && chunk:
		return choiceJSON{Delta: &messageJSON{Content: text}, FinishReason: finish}
	case c.chat:
		return choiceJSON{Message: &messageJSON{Role: "assistant", Content: text}, FinishReason: finish}
	}
	return choiceJSON{Text: &text, FinishReason: finish}
}

func (c completion) usage() *usageJSON {
	return &usageJSON{PromptTokens: c.prompt, CompletionTokens: c.tokens, TotalTokens: c.prompt + c.tokens}
}
