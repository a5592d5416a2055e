package main

import (
	"context"
	"errors"
	"flag"
	"maps"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tollgate/tollgate/api/admin"
)

func providerCommand() command {
	return command{name: "provider", about: "the OpenAI-compatible upstreams the gateway calls", verbs: []verb{
		{name: "list", about: "list the providers", run: providerList},
		{name: "get", args: []string{"NAME"}, about: "show a provider", run: providerGet},
		{name: "set", args: []string{"NAME"}, about: "change the given fields of a provider, creating it if missing", setup: providerSet},
		{name: "delete", args: []string{"NAME"}, about: "delete a provider", run: deleter("provider", "/admin/v1/providers/")},
	}}
}

func providerTable(t *textTable, providers ...admin.Provider) {
	t.row("NAME", "BASE-URL", "API-KEY-ENV", "MODELS", "PROMPT-$/M", "COMPLETION-$/M")
	for _, p := range providers {
		t.row(p.Name, p.BaseURL, textCell(p.APIKeyEnv), listCell(p.Models),
			strconv.FormatFloat(p.PromptPricePerMillion, 'f', -1, 64),
			strconv.FormatFloat(p.CompletionPricePerMillion, 'f', -1, 64))
	}
}

func showProvider(a *adminSession, raw []byte) error {
	var p admin.Provider
	return a.show(raw, &p, func(t *textTable) { providerTable(t, p) })
}

func providerPath(name string) string { return "/admin/v1/providers/" + url.PathEscape(name) }

func providerList(ctx context.Context, a *adminSession, _ []string) error {
	raw, err := a.do(ctx, http.MethodGet, "/admin/v1/providers", nil)
	if err != nil {
		return err
	}
	var out struct {
		Providers []admin.Provider `json:"providers"`
	}
	return a.show(raw, &out, func(t *textTable) { providerTable(t, out.Providers...) })
}

func providerGet(ctx context.Context, a *adminSession, args []string) error {
	raw, err := a.do(ctx, http.MethodGet, providerPath(args[0]), nil)
	if err != nil {
		return err
	}
	return showProvider(a, raw)
}

func providerSet(fs *flag.FlagSet) runFunc {
	f := newFieldFlags(fs)
	f.string("base-url", "base_url", "the provider's `URL`, such as https://api.openai.com/v1")
	f.string("api-key-env", "api_key_env", "the environment `VARIABLE` that holds the provider's API key on each node")
	f.list("models", "models", "the models to send to this provider, as `a,b`")
	f.price("prompt-price", "prompt_price_per_million", "`DOLLARS` per million prompt tokens")
	f.price("completion-price", "completion_price_per_million", "`DOLLARS` per million completion tokens")
	return func(ctx context.Context, a *adminSession, args []string) error {
		provider, err := a.getObject(ctx, providerPath(args[0]))
		if admin.IsNotFound(err) {
			if _, ok := f.patch["base_url"]; !ok {
				return errors.New("--base-url is required for a new provider")
			}
			provider, err = jsonObject{}, nil // the PUT creates it
			provider.set("name", args[0])
		}
		if err != nil {
			return err
		}
		maps.Copy(provider, f.patch)
		raw, err := a.do(ctx, http.MethodPut, providerPath(args[0]), provider)
		if err != nil {
			return err
		}
		return showProvider(a, raw)
	}
}
