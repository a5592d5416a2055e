package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/api/admin"
)

const testToken = "s3cret-admin-token"

// fakeAdmin stands in for a node's admin API: it answers canned routes
// ("METHOD /path?query") and records every request.
type fakeAdmin struct {
	srv    *httptest.Server
	routes map[string]fakeAnswer

	mu   sync.Mutex
	reqs []fakeRequest
}

type fakeAnswer struct {
	status int
	body   string
}

type fakeRequest struct {
	route string
	auth  string // the Authorization header, "" if none
	body  map[string]any
}

func newFakeAdmin(t *testing.T, routes map[string]fakeAnswer) *fakeAdmin {
	f := &fakeAdmin{routes: routes}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := r.Method + " " + r.URL.RequestURI()
		req := fakeRequest{route: route, auth: r.Header.Get("Authorization")}
		if data, _ := io.ReadAll(r.Body); len(data) > 0 {
			if err := json.Unmarshal(data, &req.body); err != nil {
				t.Errorf("%s: body %q is not a JSON object: %v", route, data, err)
			}
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, req)
		f.mu.Unlock()
		a, ok := f.routes[route]
		if !ok {
			a = fakeAnswer{http.StatusNotFound, `{"error":{"code":"not_found","message":"no route ` + route + `"}}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAdmin) requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.reqs...)
}

// runAdminCLI runs the tollgate command line against f with the admin
// token in the environment, unless env says otherwise.
func runAdminCLI(t *testing.T, f *fakeAdmin, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	vars := map[string]string{"TOLLGATE_ADMIN_TOKEN": testToken}
	if f != nil {
		vars["TOLLGATE_SERVER"] = f.srv.URL
	}
	for k, v := range env {
		vars[k] = v
	}
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, func(k string) string { return vars[k] }, &out, &errOut)
	if strings.Contains(out.String()+errOut.String(), testToken) || (err != nil && strings.Contains(err.Error(), testToken)) {
		t.Errorf("%v printed the admin token", args)
	}
	return out.String(), errOut.String(), err
}

func mustJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, s)
	}
	return m
}

const acmeJSON = `{"id":"acme","name":"Acme","plan":"gold","status":"active","allowed_models":[],"allowed_origins":[],` +
	`"created_at":"2025-01-02T03:04:05.123Z","future_field":{"kept":true}}`

func TestAdminTenantCreateSendsBodyAndToken(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t, map[string]fakeAnswer{"POST /admin/v1/tenants": {201, acmeJSON}})
	out, _, err := runAdminCLI(t, f, nil, "tenant", "create", "acme", "--plan", "gold", "--rpm", "100", "--origins", "https://a.example, https://b.example")
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 1 || reqs[0].route != "POST /admin/v1/tenants" {
		t.Fatalf("requests %+v, want one POST /admin/v1/tenants", reqs)
	}
	if reqs[0].auth != "Bearer "+testToken {
		t.Errorf("Authorization %q", reqs[0].auth)
	}
	want := mustJSON(t, `{"id":"acme","plan":"gold","overrides":{"requests_per_minute":100},
		"allowed_origins":["https://a.example","https://b.example"]}`)
	if !reflect.DeepEqual(reqs[0].body, want) {
		t.Errorf("body %v, want %v", reqs[0].body, want)
	}
	if !strings.Contains(out, "acme") || !strings.Contains(out, "2025-01-02T03:04:05Z") {
		t.Errorf("output does not show the tenant:\n%s", out)
	}
}

func TestAdminTenantCreateNeedsPlan(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t, nil)
	if _, _, err := runAdminCLI(t, f, nil, "tenant", "create", "acme"); err == nil || !strings.Contains(err.Error(), "--plan") {
		t.Fatalf("err %v, want one naming --plan", err)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

const plansJSON = `{"plans":[
	{"name":"bronze","requests_per_minute":60,"tokens_per_minute":10000,"tokens_per_month":1000000,"max_concurrent":5,"priority":10,"failure_policy":"local","allowed_models":[]},
	{"name":"platinum","requests_per_minute":10000,"tokens_per_minute":2000000,"tokens_per_month":0,"max_concurrent":500,"priority":1,"failure_policy":"open","allowed_models":["gpt-4o","o3"]}]}`

func TestAdminJSONOutputIsTheServersJSON(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t, map[string]fakeAnswer{"GET /admin/v1/plans": {200, plansJSON}})
	for _, flag := range []string{"-o", "--output"} {
		out, _, err := runAdminCLI(t, f, nil, "plan", "list", flag, "json")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(mustJSON(t, out), mustJSON(t, plansJSON)) {
			t.Errorf("%s json printed\n%s", flag, out)
		}
		if !strings.Contains(out, "\n  \"plans\": [") {
			t.Errorf("%s json is not indented:\n%s", flag, out)
		}
	}
}

func TestAdminTableHasHeaderAndAlignedColumns(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t, map[string]fakeAnswer{"GET /admin/v1/plans": {200, plansJSON}})
	out, _, err := runAdminCLI(t, f, nil, "plan", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows:\n%s", out)
	}
	header := strings.Fields(lines[0])
	wantHeader := []string{"NAME", "RPM", "TPM", "TOKENS/MONTH", "MAX-CONCURRENT", "PRIORITY", "FAILURE-POLICY", "MODELS"}
	if !reflect.DeepEqual(header, wantHeader) {
		t.Errorf("header %q, want %q", header, wantHeader)
	}
	if got := strings.Fields(lines[2]); !reflect.DeepEqual(got, []string{"platinum", "10000", "2000000", "-", "500", "1", "open", "gpt-4o,o3"}) {
		t.Errorf("row %q", got)
	}
	// Every column starts where its header does.
	col := strings.Index(lines[0], "MODELS")
	for _, l := range lines[1:] {
		if l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("MODELS at %d is not aligned in %q", col, l)
		}
	}
}

func TestAdminNotFoundIsAnErrorWithTheServersMessage(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t, map[string]fakeAnswer{
		"GET /admin/v1/tenants/nope": {404, `{"error":{"code":"not_found","message":"tenant \"nope\" not found"}}`},
	})
	out, _, err := runAdminCLI(t, f, nil, "tenant", "get", "nope")
	var apiErr *admin.Error
	if err == nil || err.Error() != `tenant "nope" not found (HTTP 404)` || !admin.IsNotFound(err) || !errors.As(err, &apiErr) || apiErr.Code != "not_found" {
		t.Fatalf("err %v", err)
	}
	if out != "" {
		t.Errorf("printed %q", out)
	}
}

func TestAdminUnauthorizedSaysWhereTheTokenGoes(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t, map[string]fakeAnswer{
		"GET /admin/v1/tenants": {401, `{"error":{"code":"unauthorized","message":"missing or wrong admin token"}}`},
	})
	_, _, err := runAdminCLI(t, f, nil, "tenant", "list")
	if err == nil || !strings.Contains(err.Error(), "missing or wrong admin token (HTTP 401)") || !strings.Contains(err.Error(), "TOLLGATE_ADMIN_TOKEN") {
		t.Fatalf("err %v", err)
	}
}

func TestAdminTenantSuspendGetsThenPutsTheWholeTenant(t *testing.T) {
	t.Parallel()
	suspended := strings.Replace(acmeJSON, `"active"`, `"suspended"`, 1)
	f := newFakeAdmin(t, map[string]fakeAnswer{
		"GET /admin/v1/tenants/acme": {200, acmeJSON},
		"PUT /admin/v1/tenants/acme": {200, suspended},
	})
	out, _, err := runAdminCLI(t, f, nil, "tenant", "suspend", "acme")
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 2 || reqs[0].route != "GET /admin/v1/tenants/acme" || reqs[1].route != "PUT /admin/v1/tenants/acme" {
		t.Fatalf("requests %+v, want GET then PUT", reqs)
	}
	want := mustJSON(t, suspended) // everything kept, even a field this client does not know
	if !reflect.DeepEqual(reqs[1].body, want) {
		t.Errorf("PUT %v, want %v", reqs[1].body, want)
	}
	if !strings.Contains(out, "suspended") {
		t.Errorf("output:\n%s", out)
	}
}

func TestAdminTenantUpdateKeepsOtherOverrides(t *testing.T) {
	t.Parallel()
	tenant := `{"id":"acme","plan":"gold","status":"active","overrides":{"tokens_per_minute":5000,"priority":2}}`
	f := newFakeAdmin(t, map[string]fakeAnswer{
		"GET /admin/v1/tenants/acme": {200, tenant},
		"PUT /admin/v1/tenants/acme": {200, tenant},
	})
	// Flags before, between and after the positional argument.
	if _, _, err := runAdminCLI(t, f, nil, "tenant", "update", "--plan", "silver", "acme", "--rpm", "7", "--models", ""); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	want := mustJSON(t, `{"id":"acme","plan":"silver","status":"active","allowed_models":[],
		"overrides":{"tokens_per_minute":5000,"priority":2,"requests_per_minute":7}}`)
	if len(reqs) != 2 || !reflect.DeepEqual(reqs[1].body, want) {
		t.Fatalf("requests %+v, want a PUT of %v", reqs, want)
	}
}

func TestAdminPlanSetChangesOnlyTheGivenFlagsOrCreates(t *testing.T) {
	t.Parallel()
	bronze := `{"name":"bronze","requests_per_minute":60,"tokens_per_minute":10000,"priority":10,"failure_policy":"local","allowed_models":["a"]}`
	f := newFakeAdmin(t, map[string]fakeAnswer{
		"GET /admin/v1/plans/bronze": {200, bronze},
		"PUT /admin/v1/plans/bronze": {200, bronze},
		"PUT /admin/v1/plans/new":    {200, `{"name":"new"}`},
	})
	if _, _, err := runAdminCLI(t, f, nil, "plan", "set", "bronze", "--tpm", "0", "--failure-policy", "closed"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runAdminCLI(t, f, nil, "plan", "set", "--rpm=5", "new"); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 4 {
		t.Fatalf("requests %+v", reqs)
	}
	wantBronze := mustJSON(t, `{"name":"bronze","requests_per_minute":60,"tokens_per_minute":0,"priority":10,"failure_policy":"closed","allowed_models":["a"]}`)
	if reqs[1].route != "PUT /admin/v1/plans/bronze" || !reflect.DeepEqual(reqs[1].body, wantBronze) {
		t.Errorf("%s %v, want PUT %v", reqs[1].route, reqs[1].body, wantBronze)
	}
	wantNew := mustJSON(t, `{"name":"new","requests_per_minute":5}`)
	if reqs[3].route != "PUT /admin/v1/plans/new" || !reflect.DeepEqual(reqs[3].body, wantNew) {
		t.Errorf("%s %v, want PUT %v", reqs[3].route, reqs[3].body, wantNew)
	}
}

func TestAdminKeyCreatePrintsTheKeyOnce(t *testing.T) {
	t.Parallel()
	answer := `{"id":"tg_ab12cd34","prefix":"tg_ab12cd34","tenant":"acme","name":"ci","created_at":"2025-01-02T03:04:05Z","revoked":false,"key":"tg_ab12cd34_the-secret"}`
	f := newFakeAdmin(t, map[string]fakeAnswer{"POST /admin/v1/tenants/acme/keys": {201, answer}})
	out, _, err := runAdminCLI(t, f, nil, "key", "create", "acme", "--name", "ci")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\n    tg_ab12cd34_the-secret\n") || !strings.Contains(out, "only time") {
		t.Errorf("output:\n%s", out)
	}
	if body := f.requests()[0].body; body["name"] != "ci" {
		t.Errorf("body %v", body)
	}
	out, _, err = runAdminCLI(t, f, nil, "key", "create", "acme", "-o", "json")
	if err != nil || mustJSON(t, out)["key"] != "tg_ab12cd34_the-secret" {
		t.Errorf("json %v:\n%s", err, out)
	}
}

func TestAdminKeyListAndRevoke(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t, map[string]fakeAnswer{
		"GET /admin/v1/keys":              {200, `{"keys":[]}`},
		"GET /admin/v1/tenants/acme/keys": {200, `{"keys":[{"id":"tg_1","tenant":"acme","revoked":true,"revoked_at":"2025-02-01T00:00:00Z"}]}`},
		"DELETE /admin/v1/keys/tg_1":      {200, `{"id":"tg_1","tenant":"acme","revoked":true}`},
	})
	out, _, err := runAdminCLI(t, f, nil, "key", "list", "acme")
	if err != nil || !strings.Contains(out, "revoked 2025-02-01T00:00:00Z") {
		t.Errorf("%v:\n%s", err, out)
	}
	if out, _, err = runAdminCLI(t, f, nil, "key", "list"); err != nil || strings.Count(out, "\n") != 1 {
		t.Errorf("want just a header, %v:\n%s", err, out)
	}
	if _, _, err = runAdminCLI(t, f, nil, "key", "revoke", "tg_1"); err != nil {
		t.Error(err)
	}
}

func TestAdminMissingTokenSendsNoHeader(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t, map[string]fakeAnswer{"GET /admin/v1/plans": {200, `{"plans":[]}`}})
	if _, _, err := runAdminCLI(t, f, map[string]string{"TOLLGATE_ADMIN_TOKEN": ""}, "plan", "list"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runAdminCLI(t, f, nil, "plan", "list", "--admin-token", "from-flag"); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if reqs[0].auth != "" || reqs[1].auth != "Bearer from-flag" {
		t.Errorf("Authorization %q then %q", reqs[0].auth, reqs[1].auth)
	}
}

func TestAdminServerFlagTakesHostPort(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t, map[string]fakeAnswer{"GET /admin/v1/providers": {200, `{"providers":[]}`}})
	hostPort := strings.TrimPrefix(f.srv.URL, "http://")
	if _, _, err := runAdminCLI(t, nil, nil, "provider", "list", "--server", hostPort); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runAdminCLI(t, nil, nil, "provider", "list", "--server", "ftp://x"); err == nil || !strings.Contains(err.Error(), "--server") {
		t.Errorf("err %v, want one naming --server", err)
	}
}

func TestAdminConnectionRefusedNamesTheServer(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t, nil)
	url := f.srv.URL
	f.srv.Close()
	_, _, err := runAdminCLI(t, f, nil, "status")
	if err == nil || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err %v", err)
	}
}

func TestAdminTimeoutNamesTheServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(srv.Close)
	_, _, err := runAdminCLI(t, nil, nil, "plan", "list", "--server", srv.URL, "--timeout", "50ms")
	if err == nil || !strings.Contains(err.Error(), "no answer from "+srv.URL) {
		t.Fatalf("err %v", err)
	}
}

func TestAdminProviderSetNeedsBaseURLToCreate(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t, map[string]fakeAnswer{
		"PUT /admin/v1/providers/openai": {200, `{"name":"openai","base_url":"https://api.openai.com/v1","models":["gpt-4o"],"prompt_price_per_million":2.5}`},
	})
	if _, _, err := runAdminCLI(t, f, nil, "provider", "set", "openai", "--models", "gpt-4o"); err == nil || !strings.Contains(err.Error(), "--base-url") {
		t.Fatalf("err %v, want one naming --base-url", err)
	}
	out, _, err := runAdminCLI(t, f, nil, "provider", "set", "openai", "--base-url", "https://api.openai.com/v1", "--prompt-price", "2.5")
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	want := mustJSON(t, `{"name":"openai","base_url":"https://api.openai.com/v1","prompt_price_per_million":2.5}`)
	if last := reqs[len(reqs)-1]; !reflect.DeepEqual(last.body, want) {
		t.Errorf("PUT %v, want %v", last.body, want)
	}
	if !strings.Contains(out, "2.5") {
		t.Errorf("output:\n%s", out)
	}
}

func TestAdminUsageShowsTotalModelsAndDays(t *testing.T) {
	t.Parallel()
	usage := `{"tenant":"acme","month":"2025-01",
		"total":{"requests":3,"tokens":300,"prompt_tokens":200,"completion_tokens":100,"cost_micros":1500000,"cost_usd":1.5},
		"models":[{"model":"gpt-4o","requests":3,"tokens":300,"prompt_tokens":200,"completion_tokens":100,"cost_micros":1500000,"cost_usd":1.5}],
		"days":[{"day":"2025-01-07","model":"gpt-4o","requests":3,"tokens":300,"prompt_tokens":200,"completion_tokens":100,"cost_micros":1500000,"cost_usd":1.5}],
		"checks":{"requests":7,"tokens":70,"prompt_tokens":0,"completion_tokens":0,"cost_micros":0,"cost_usd":0}}`
	f := newFakeAdmin(t, map[string]fakeAnswer{"GET /admin/v1/tenants/acme/usage?month=2025-01": {200, usage}})
	out, _, err := runAdminCLI(t, f, nil, "usage", "acme", "--month", "2025-01")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TENANT", "acme", "1.500000", "MODEL", "gpt-4o", "DAY", "2025-01-07", "(check API)"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

func TestAdminStatusShowsRaftAndMembers(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t, map[string]fakeAnswer{
		"GET /admin/v1/status": {200, `{"node":"node-1","state":"leader","leader":"node-1","applied_index":42,"voters":["node-1","node-2"],"nonvoters":[],"plans":4,"tenants":1,"keys":0,"providers":0}`},
		"GET /v1/cluster":      {200, `{"self":"node-1","members":[{"name":"node-1","state":"alive","api_addr":"127.0.0.1:8081","grpc_addr":"127.0.0.1:9090","ready":true}],"ring":["node-1"]}`},
	})
	out, _, err := runAdminCLI(t, f, nil, "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"leader", "node-1,node-2", "42", "MEMBER", "127.0.0.1:9090"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	out, _, err = runAdminCLI(t, f, nil, "status", "-o", "json")
	if m := mustJSON(t, out); err != nil || m["status"] == nil || m["cluster"] == nil {
		t.Errorf("json %v:\n%s", err, out)
	}
}

func TestAdminUnknownVerbAndArgumentsAreErrors(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t, nil)
	for _, args := range [][]string{
		{"tenant"}, {"tenant", "frob"}, {"tenant", "get"}, {"tenant", "get", "a", "b"},
		{"plan", "list", "--bogus"}, {"plan", "create", "x", "--rpm", "lots"}, {"plan", "list", "-o", "yaml"},
	} {
		if _, _, err := runAdminCLI(t, f, nil, args...); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	_, stderr, _ := runAdminCLI(t, f, nil, "tenant", "frob")
	if !strings.Contains(stderr, "tollgate tenant suspend ID") {
		t.Errorf("no usage on stderr:\n%s", stderr)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestAdminHelpListsVerbsAndFlags(t *testing.T) {
	t.Parallel()
	out, _, err := runAdminCLI(t, nil, nil, "tenant", "-h")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tollgate tenant create ID", "tollgate tenant resume ID", "--plan PLAN", "--origins", "--server", "-o FORMAT"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	_, stderr, err := runAdminCLI(t, nil, nil, "key", "create", "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "--name NAME") {
		t.Errorf("%v:\n%s", err, stderr)
	}
	// Every command has help, and every verb's flags bind without clashing.
	for _, c := range adminCommands() {
		if _, _, err := runAdminCLI(t, nil, nil, c.name, "--help"); err != nil {
			t.Errorf("%s --help: %v", c.name, err)
		}
	}
}

func TestAdminParseInterleaved(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a := fs.String("a", "", "")
	b := fs.Bool("b", false, "")
	pos, err := parseInterleaved(fs, []string{"-a", "1", "x", "-b", "y", "--", "-z", "w"})
	if err != nil || *a != "1" || !*b || !reflect.DeepEqual(pos, []string{"x", "y", "-z", "w"}) {
		t.Errorf("pos %q a %q b %v err %v", pos, *a, *b, err)
	}
}

func TestRLSYAMLIsReadAsEnvoysReferenceServiceReadsIt(t *testing.T) {
	t.Parallel()
	domains, err := parseRLSYAML([]byte(`
domain: mongo_cps
descriptors:
  - key: database
    value: users
    rate_limit:
      unit: second
      requests_per_unit: 500
  - key: database
    value: default
    rate_limit:
      unit: second
      requests_per_unit: 500
---
domain: edge
failure_policy: closed
descriptors:
  - key: remote_address
    descriptors:
      - key: path
        shadow_mode: true
        detailed_metric: true
        rate_limit: {unit: minute, unit_multiplier: 5, requests_per_unit: 10, name: per-path}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(domains) != 2 || domains[0].Domain != "mongo_cps" || len(domains[0].Descriptors) != 2 ||
		domains[0].Descriptors[1].RateLimit.RequestsPerUnit != 500 {
		t.Fatalf("first domain: %+v", domains)
	}
	nested := domains[1].Descriptors[0].Descriptors[0]
	if domains[1].FailurePolicy != "closed" || !nested.ShadowMode || nested.RateLimit.UnitMultiplier != 5 || nested.RateLimit.Name != "per-path" {
		t.Errorf("second domain: %+v", domains[1])
	}
	if notes := rlsIgnored(domains); len(notes) != 1 || !strings.Contains(notes[0], "remote_address > path") {
		t.Errorf("notes on what is read and ignored: %q", notes)
	}

	for doc, want := range map[string]string{
		"domain: x\ndescriptors:\n  - key: a\n    replaces: [{name: b}]\n": "field replaces not found",
		"descriptors: []\n": "domain: is required",
		"":                  "no domain in the file",
		"domain: [x\n":      "line 1",
	} {
		if _, err := parseRLSYAML([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", doc, err, want)
		}
	}
}

// FuzzRLSYAML feeds arbitrary files to the envoyproxy/ratelimit reader:
// it never panics, and what it accepts names a domain.
func FuzzRLSYAML(f *testing.F) {
	f.Add([]byte(envoyRules))
	f.Add([]byte("domain: a\n---\ndomain: b\ndescriptors: [{key: k, descriptors: [{key: j}]}]\n"))
	f.Add([]byte("domain: [x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		domains, err := parseRLSYAML(data)
		if err != nil {
			return
		}
		for _, d := range domains {
			if d.Domain == "" {
				t.Fatalf("%q: a domain with no name accepted", data)
			}
		}
	})
}
