package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/tollgate/tollgate/"

// layers says which of the module's packages each package may depend on,
// directly or not: arrows point down only (README, "Layout"). A package
// not listed here may depend on anything, and only cmd/tollgate is.
var layers = map[string][]string{
	"limiter":                  {},
	"quota":                    {"limiter"},
	"quota/quotapb":            {"limiter", "quota", "proto/..."},
	"cluster/ring":             {},
	"cluster/gossip":           {},
	"cluster/clustertest":      {},
	"cluster/config":           {"limiter", "quota", "proto/..."},
	"cluster/peer":             {"limiter", "quota", "quota/quotapb", "cluster/gossip", "proto/..."},
	"cluster":                  {"limiter", "quota", "quota/quotapb", "cluster/...", "proto/..."},
	"api/admin":                {},
	"api":                      {"limiter", "quota", "quota/quotapb", "cluster", "cluster/...", "api/admin", "proto/..."},
	"proxy":                    {"limiter", "quota", "proto/..."},
	"proxy/mockupstream":       {},
	"bench":                    {"api/admin", "proto/..."},
	"proto":                    {},
	"deploy":                   {}, // tests of the deploy files only
	"proto/tollgate/v1":        {},
	"proto/tollgate/config/v1": {},
	"proto/tollgate/peer/v1":   {"proto/..."},
}

// noNetwork lists packages that must not import gRPC or net/http
// themselves: the replicated configuration is applied the same way
// whatever carried it. (Its generated messages share a Go package with the
// Admin service's stubs, so gRPC is among its dependencies all the same.)
var noNetwork = []string{"cluster/config", "limiter", "quota", "cluster/ring"}

func allowed(dep string, rules []string) bool {
	for _, r := range rules {
		if dep == r || (strings.HasSuffix(r, "/...") && strings.HasPrefix(dep, strings.TrimSuffix(r, "..."))) {
			return true
		}
	}
	return false
}

func TestPackagesDependDownwardOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Deps \",\"}}|{{join .Imports \",\"}}", module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Split(line, "|")
		pkg := strings.TrimPrefix(fields[0], module)
		seen[pkg] = true
		rules, ok := layers[pkg]
		if !ok {
			if pkg != "cmd/tollgate" {
				t.Errorf("package %s has no place in the layers: add it", pkg)
			}
			continue
		}
		for _, dep := range strings.Split(fields[1], ",") {
			if d, ours := strings.CutPrefix(dep, module); ours && !allowed(d, rules) {
				t.Errorf("%s depends on %s, which is above it or beside it", pkg, d)
			}
		}
		if slices.Contains(noNetwork, pkg) {
			for _, imp := range strings.Split(fields[2], ",") {
				if imp == "net/http" || strings.HasPrefix(imp, "google.golang.org/grpc") {
					t.Errorf("%s imports %s: it must not touch the network", pkg, imp)
				}
			}
		}
	}
	for pkg := range layers {
		if !seen[pkg] {
			t.Errorf("layers names %s, which does not exist", pkg)
		}
	}
}

// The guard itself: a rule breaks on a dependency it does not allow.
func TestLayerRulesMatchByPrefix(t *testing.T) {
	if !allowed("cluster/peer", []string{"cluster/..."}) || allowed("clusterx", []string{"cluster/..."}) ||
		allowed("api", []string{"api/admin"}) || !allowed("quota", []string{"limiter", "quota"}) {
		t.Fatal("allowed matches the wrong packages")
	}
}
