package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/api/admin"
)

func rlsCommand() command {
	return command{name: "rls", about: "the descriptor rules of Envoy's rate limit service, by domain", verbs: []verb{
		{name: "list", about: "list the domains", run: rlsList},
		{name: "get", args: []string{"DOMAIN"}, about: "show a domain's rules", run: rlsGet},
		{name: "set", about: "write the domains of a YAML file in envoyproxy/ratelimit's format (-f FILE), replacing each whole, one after another (the first refused stops the rest)", setup: rlsSet},
		{name: "delete", args: []string{"DOMAIN"}, about: "delete a domain", run: deleter("rls domain", "/admin/v1/rls/")},
	}}
}

func rlsPath(domain string) string { return "/admin/v1/rls/" + url.PathEscape(domain) }

func rlsList(ctx context.Context, a *adminSession, _ []string) error {
	raw, err := a.do(ctx, http.MethodGet, "/admin/v1/rls", nil)
	if err != nil {
		return err
	}
	var out struct {
		Domains []admin.RLSDomain `json:"domains"`
	}
	return a.show(raw, &out, func(t *textTable) {
		t.row("DOMAIN", "DESCRIPTORS", "LIMITS", "FAILURE-POLICY")
		for _, d := range out.Domains {
			var descriptors, limits int
			walkRLS(d.Descriptors, "", func(_ string, x admin.RLSDescriptor) {
				descriptors++
				if x.RateLimit != nil {
					limits++
				}
			})
			t.row(d.Domain, strconv.Itoa(descriptors), strconv.Itoa(limits), cmp.Or(d.FailurePolicy, "local"))
		}
	})
}

func rlsGet(ctx context.Context, a *adminSession, args []string) error {
	raw, err := a.do(ctx, http.MethodGet, rlsPath(args[0]), nil)
	if err != nil {
		return err
	}
	return showRLS(a, raw)
}

// showRLS prints a domain's rules one per line, each as the path of
// key=value entries that reaches it (key alone matches any value).
func showRLS(a *adminSession, raw []byte) error {
	var d admin.RLSDomain
	return a.show(raw, &d, func(t *textTable) {
		t.row("DOMAIN", "DESCRIPTOR", "LIMIT", "SHADOW")
		walkRLS(d.Descriptors, "", func(path string, x admin.RLSDescriptor) {
			shadow := ""
			if x.ShadowMode {
				shadow = "yes"
			}
			t.row(d.Domain, path, rlsLimitCell(x.RateLimit), shadow)
		})
	})
}

func walkRLS(ds []admin.RLSDescriptor, parent string, fn func(path string, d admin.RLSDescriptor)) {
	for _, d := range ds {
		path := d.Key
		if d.Value != "" {
			path += "=" + d.Value
		}
		if parent != "" {
			path = parent + " > " + path
		}
		fn(path, d)
		walkRLS(d.Descriptors, path, fn)
	}
}

func rlsLimitCell(l *admin.RLSRateLimit) string {
	switch {
	case l == nil:
		return "-"
	case l.Unlimited:
		return "unlimited"
	}
	unit := l.Unit
	if l.UnitMultiplier > 1 {
		unit = strconv.FormatUint(uint64(l.UnitMultiplier), 10) + " " + unit + "s"
	}
	cell := fmt.Sprintf("%d per %s", l.RequestsPerUnit, unit)
	if l.Name != "" {
		cell += " (" + l.Name + ")"
	}
	return cell
}

func rlsSet(fs *flag.FlagSet) runFunc {
	file := fs.String("f", "", "the YAML `FILE` to write: one domain in envoyproxy/ratelimit's format, or several as YAML documents (---)")
	return func(ctx context.Context, a *adminSession, _ []string) error {
		if *file == "" {
			return errors.New("-f FILE is required: the domain's rules, as envoyproxy/ratelimit reads them")
		}
		data, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		domains, err := parseRLSYAML(data)
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		if !a.json {
			for _, note := range rlsIgnored(domains) {
				fmt.Fprintln(a.out, "note:", note)
			}
		}
		for _, d := range domains {
			raw, err := a.do(ctx, http.MethodPut, rlsPath(d.Domain), d)
			if err != nil {
				return fmt.Errorf("domain %q: %w", d.Domain, err)
			}
			if err := showRLS(a, raw); err != nil {
				return err
			}
		}
		return nil
	}
}

// rlsIgnored names the fields of envoyproxy/ratelimit that a file sets
// and Tollgate reads without acting on.
func rlsIgnored(domains []admin.RLSDomain) []string {
	var notes []string
	for _, d := range domains {
		walkRLS(d.Descriptors, "", func(path string, x admin.RLSDescriptor) {
			if x.DetailedMetric || x.ValueToMetric {
				notes = append(notes, fmt.Sprintf("domain %q, %s: detailed_metric and value_to_metric name envoyproxy/ratelimit's statistics and do nothing here", d.Domain, path))
			}
		})
	}
	return notes
}

// parseRLSYAML reads one or more domains in envoyproxy/ratelimit's
// configuration format; a field it does not know is an error, so that a
// rule is never silently dropped.
func parseRLSYAML(data []byte) ([]admin.RLSDomain, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var out []admin.RLSDomain
	for {
		var d admin.RLSDomain
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if d.Domain == "" {
			return nil, fmt.Errorf("document %d: domain: is required", len(out)+1)
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, errors.New("no domain in the file")
	}
	return out, nil
}
