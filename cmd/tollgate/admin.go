package main

// The admin commands (tollgate plan|tenant|key|provider|rls|usage|status) are a
// thin layer over api/admin's client of the admin HTTP API: each sends one
// or two requests to a node and prints the answer, as a table for people or
// as the server's JSON for scripts. This file holds what they share: the
// command table, argument parsing and help.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tollgate/tollgate/api/admin"
)

// command is one `tollgate NOUN`, made of verbs.
type command struct {
	name  string
	about string
	verbs []verb
}

// verb is one `tollgate NOUN VERB`. A command with a single verb named ""
// takes no verb (tollgate usage, tollgate status).
type verb struct {
	name  string
	args  []string // positional arguments; a name in brackets is optional
	about string
	// Either run, for a verb with only the common flags, or setup, which
	// binds the verb's own flags to fs and returns what runs it once they
	// are parsed.
	run   runFunc
	setup func(fs *flag.FlagSet) runFunc
}

type runFunc func(ctx context.Context, a *adminSession, args []string) error

// adminCommands is every admin command, in the order help lists them.
func adminCommands() []command {
	return []command{planCommand(), tenantCommand(), keyCommand(), providerCommand(), rlsCommand(), usageCommand(), statusCommand()}
}

// runAdmin runs `tollgate NOUN [VERB] ARGS...`; flags may come before,
// between or after the arguments.
func runAdmin(ctx context.Context, noun string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cmd command
	for _, c := range adminCommands() {
		if c.name == noun {
			cmd = c
		}
	}
	if cmd.name == "" {
		return fmt.Errorf("unknown subcommand %q", noun)
	}
	v, args, err := cmd.verb(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		cmd.help(stdout)
		return nil
	case err != nil:
		cmd.help(stderr)
		return err
	}

	fs := flag.NewFlagSet(v.usage(cmd.name), flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\n%s.\n\nFlags:\n", v.usage(cmd.name), v.about)
		printFlags(fs.Output(), fs)
	}
	var common commonFlags
	common.bind(fs, getenv)
	run := v.run
	if v.setup != nil {
		run = v.setup(fs)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := v.checkArgs(pos); err != nil {
		fmt.Fprintf(stderr, "Usage: %s [flags]\n", v.usage(cmd.name))
		return err
	}
	a, err := common.admin(getenv, stdout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, common.timeout)
	defer cancel()
	return run(ctx, a, pos)
}

// verb finds the verb args start with and returns the arguments after it, or
// flag.ErrHelp if they ask for the command's help.
func (c command) verb(args []string) (verb, []string, error) {
	if len(c.verbs) == 1 && c.verbs[0].name == "" {
		if len(args) == 1 && isHelp(args[0]) {
			return verb{}, nil, flag.ErrHelp
		}
		return c.verbs[0], args, nil
	}
	if len(args) == 0 {
		return verb{}, nil, fmt.Errorf("%s: missing verb", c.name)
	}
	if isHelp(args[0]) || args[0] == "help" {
		return verb{}, nil, flag.ErrHelp
	}
	for _, v := range c.verbs {
		if v.name == args[0] {
			return v, args[1:], nil
		}
	}
	return verb{}, nil, fmt.Errorf("%s: unknown verb %q", c.name, args[0])
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// help lists the command's verbs, then their flags, then the flags every
// admin command takes.
func (c command) help(w io.Writer) {
	fmt.Fprintf(w, "tollgate %s: %s\n\nUsage:\n", c.name, c.about)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range c.verbs {
		fmt.Fprintf(tw, "  %s\t%s\n", v.usage(c.name), v.about)
	}
	tw.Flush()

	// Verbs with the same flags (create and update, say) share a list.
	var lists, verbs []string
	for _, v := range c.verbs {
		if v.setup == nil {
			continue
		}
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		v.setup(fs)
		var b strings.Builder
		printFlags(&b, fs)
		if n := len(lists); n > 0 && lists[n-1] == b.String() {
			verbs[n-1] += " and " + v.name
			continue
		}
		lists, verbs = append(lists, b.String()), append(verbs, v.name)
	}
	for i := range lists {
		if verbs[i] == "" {
			fmt.Fprintf(w, "\nFlags:\n%s", lists[i])
		} else {
			fmt.Fprintf(w, "\nFlags of %s:\n%s", verbs[i], lists[i])
		}
	}

	fmt.Fprintf(w, "\nFlags of every admin command, before or after the arguments:\n")
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	new(commonFlags).bind(fs, func(string) string { return "" })
	printFlags(w, fs)
}

// printFlags lists flags one a line, as --name ARG, aligned.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		dashes := "--"
		if len(f.Name) == 1 {
			dashes = "-"
		}
		if f.DefValue != "" && f.DefValue != "0" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  %s%s %s\t%s\n", dashes, f.Name, arg, usage)
	})
	tw.Flush()
}

func (v verb) usage(noun string) string {
	words := []string{"tollgate", noun}
	if v.name != "" {
		words = append(words, v.name)
	}
	return strings.Join(append(words, v.args...), " ")
}

// checkArgs checks the number of positional arguments.
func (v verb) checkArgs(args []string) error {
	required := 0
	for _, a := range v.args {
		if !strings.HasPrefix(a, "[") {
			required++
		}
	}
	switch {
	case len(args) < required:
		return fmt.Errorf("missing %s", strings.Join(v.args[len(args):required], " "))
	case len(args) > len(v.args):
		return fmt.Errorf("unexpected argument %q", args[len(v.args)])
	}
	return nil
}

// parseInterleaved parses flags wherever they are among the positional
// arguments, which it returns. The flag package stops at the first
// non-flag, so it parses again after each one; after "--" everything is
// positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

const defaultServer = "http://127.0.0.1:8081"

// commonFlags are the flags of every admin command.
type commonFlags struct {
	server  string
	token   string
	output  string
	timeout time.Duration
}

func (c *commonFlags) bind(fs *flag.FlagSet, getenv func(string) string) {
	server := getenv("TOLLGATE_SERVER")
	if server == "" {
		server = defaultServer
	}
	fs.StringVar(&c.server, "server", server, "the admin API of any node, as `host:port` or URL (env TOLLGATE_SERVER)")
	// No default from the environment here: help prints defaults, and it
	// must not print the token. admin reads the environment instead.
	fs.StringVar(&c.token, "admin-token", "", "the admin API `TOKEN` (default env TOLLGATE_ADMIN_TOKEN, which is safer: flags show in ps)")
	fs.StringVar(&c.output, "output", "table", "`FORMAT`: table, for people, or json, for scripts")
	fs.StringVar(&c.output, "o", "table", "short for --output `FORMAT`")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for the node, a `DURATION` such as 30s")
}

// admin checks the flags and returns what the verbs run with.
func (c *commonFlags) admin(getenv func(string) string, stdout io.Writer) (*adminSession, error) {
	if c.output != "table" && c.output != "json" {
		return nil, fmt.Errorf("--output: %q is not table or json", c.output)
	}
	if c.timeout <= 0 {
		return nil, fmt.Errorf("--timeout: must be positive, got %s", c.timeout)
	}
	token := c.token
	if token == "" {
		token = getenv("TOLLGATE_ADMIN_TOKEN")
	}
	client, err := admin.NewClient(c.server, token, 0) // the context has --timeout
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	return &adminSession{client: client, json: c.output == "json", out: stdout}, nil
}
