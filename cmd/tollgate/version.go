package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/tollgate/tollgate/cluster"
)

// buildOf is what this binary is, from the build information the Go
// toolchain embeds: the module version ("(devel)" for a build from a
// checkout) and the VCS revision, time and state of the tree it was built
// from.
func buildOf() cluster.Build {
	b := cluster.Build{Version: "(devel)", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if v := bi.Main.Version; v != "" {
		b.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// runVersion prints the build: a line, or JSON with -o json.
func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tollgate version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("o", "text", "output: text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	b := buildOf()
	switch *output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{
			"version": b.Version, "revision": b.Revision, "time": b.Time, "modified": b.Modified,
			"go": b.GoVersion, "platform": runtime.GOOS + "/" + runtime.GOARCH,
		})
	case "text":
		line := "tollgate " + b.Version
		if b.Revision != "" {
			line += " " + b.Revision
			if b.Modified {
				line += " (modified)"
			}
		}
		if b.Time != "" {
			line += ", " + b.Time
		}
		fmt.Fprintf(stdout, "%s, %s %s/%s\n", line, b.GoVersion, runtime.GOOS, runtime.GOARCH)
		return nil
	}
	return fmt.Errorf("-o: %q is not text or json", *output)
}
