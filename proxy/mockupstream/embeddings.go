package mockupstream

import (
	"encoding/base64"
	"encoding/binary"
	"hash/fnv"
	"math"
	"net/http"
)

// dimensions is the length of every embedding: enough to tell inputs
// apart, small enough to read in a test's output.
const dimensions = 8

type embeddingRequest struct {
	Input          inputs `json:"input"`
	EncodingFormat string `json:"encoding_format"`
}

type embeddingsJSON struct {
	Object string          `json:"object"`
	Data   []embeddingJSON `json:"data"`
	Model  string          `json:"model"`
	Usage  struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

type embeddingJSON struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string of little-endian float32s
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	var req embeddingRequest
	model, e := decodeBody(w, r, &req)
	if e != nil {
		writeError(w, e)
		return
	}
	if len(req.Input) == 0 {
		writeError(w, invalid("input", "you must provide a non-empty input"))
		return
	}
	// OpenAI's Python client asks for base64 unless told otherwise.
	if f := req.EncodingFormat; f != "" && f != "float" && f != "base64" {
		writeError(w, invalid("encoding_format", "'encoding_format' must be 'float' or 'base64', got '%s'", f))
		return
	}
	if !s.admit(w, r) {
		return
	}
	answer := embeddingsJSON{Object: "list", Data: make([]embeddingJSON, len(req.Input)), Model: model}
	for i, in := range req.Input {
		var vec any = embed(in)
		if req.EncodingFormat == "base64" {
			vec = encodeBase64(vec.([]float32))
		}
		answer.Data[i] = embeddingJSON{Object: "embedding", Index: i, Embedding: vec}
	}
	prompt := req.Input.tokens()
	answer.Usage.PromptTokens, answer.Usage.TotalTokens = prompt, prompt
	writeJSON(w, http.StatusOK, answer)
	s.report(prompt, 0)
}

// embed hashes in to a unit vector, the same for the same input every time.
func embed(in input) []float32 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(in.text))
	for _, id := range in.ids {
		_ = binary.Write(h, binary.LittleEndian, id)
	}
	// Spread the hash over the dimensions with splitmix64.
	x := h.Sum64()
	vec := make([]float64, dimensions)
	var norm float64
	for i := range vec {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		vec[i] = float64(z>>11)/(1<<53)*2 - 1
		norm += vec[i] * vec[i]
	}
	norm = max(math.Sqrt(norm), math.SmallestNonzeroFloat64) // no dividing by zero, however unlikely an all-zero draw
	out := make([]float32, dimensions)
	for i, v := range vec {
		out[i] = float32(v / norm)
	}
	return out
}

func encodeBase64(vec []float32) string {
	b := make([]byte, 0, 4*len(vec))
	for _, v := range vec {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return base64.StdEncoding.EncodeToString(b)
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	if !s.admit(w, r) {
		return
	}
	type modelJSON struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	data := make([]modelJSON, len(s.opts.Models))
	for i, m := range s.opts.Models {
		data[i] = modelJSON{ID: m, Object: "model", Created: s.created, OwnedBy: "mock"}
	}
	writeJSON(w, http.StatusOK, struct {
		Object string      `json:"object"`
		Data   []modelJSON `json:"data"`
	}{"list", data})
}
