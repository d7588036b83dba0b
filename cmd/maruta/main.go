// Command maruta is a Forward-protocol log collector that writes
// Hive-partitioned Parquet to S3 or a local folder. See README.md.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
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

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "maruta: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return cmd.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: maruta <command> [flags]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'maruta <command> -h' for a command's flags.")
}

func init() {
	commands["version"] = command{"print the version", func(args []string, stdout, _ io.Writer) int {
		fmt.Fprintf(stdout, "maruta %s (commit %s)\n", version, commit)
		return 0
	}}
}
