package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
)

// Set by the linker: -X main.version=… -X main.commit=…. Without them,
// the commit comes from the VCS stamp `go build` writes in a checkout.
var (
	version = "dev"
	commit  = "none"
)

func init() {
	if commit != "none" {
		return
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) >= 12 {
			commit = rev[:12]
			if dirty {
				commit += "-dirty"
			}
		}
	}
}

type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// runMain runs the command args name. Flags without a command are run's:
// `maruta -c FILE` runs (Fluent Bit's habit), `maruta -c FILE --dry-run`
// checks (fluentd's).
func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			if cmd, ok := commands[args[1]]; ok {
				return cmd.run([]string{"-h"}, stdout, stderr)
			}
		}
		usage(stdout)
		return 0
	case "-V", "-version", "--version":
		return commands["version"].run(args[1:], stdout, stderr)
	}
	if strings.HasPrefix(args[0], "-") {
		return commands["run"].run(args, stdout, stderr)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		hint := ""
		if st, err := os.Stat(args[0]); err == nil && !st.IsDir() {
			hint = fmt.Sprintf(" (to run this config: maruta run %s)", args[0])
		}
		fmt.Fprintf(stderr, "maruta: unknown command %q%s; maruta -h lists the commands\n", args[0], hint)
		return 2
	}
	return cmd.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: maruta <command> [flags]      (maruta -c FILE: maruta run -c FILE)")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nA command's flags: maruta <command> -h. The config of every command: -c FILE, else $MARUTA_CONFIG.")
	fmt.Fprintln(w, "Version: maruta --version (or -V).")
}

func init() {
	commands["version"] = command{"print the version", func(args []string, stdout, stderr io.Writer) int {
		c := newCLI("version", "", "")
		if _, err := c.parse(args, 0, stdout, stderr); err != nil {
			return exitCode(err)
		}
		fmt.Fprintf(stdout, "maruta %s (commit %s)\n", version, commit)
		return 0
	}}
}
