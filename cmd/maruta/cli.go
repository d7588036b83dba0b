package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// The rules every command follows (README "Command line"):
//   - the config comes from -c FILE (or -config FILE), else $MARUTA_CONFIG;
//     run, validate and convert also take it as their one positional
//     argument (`maruta run maruta.yaml`), but not twice;
//   - flags may come before or after positional arguments;
//   - -h, -help and --help print the command's usage on stdout and exit 0;
//   - a bad flag, a missing or a stray argument is one line on stderr
//     naming the command and its synopsis, exit 2;
//   - a config that does not load, or a failure, exits 1.

// cli describes one command's command line.
type cli struct {
	name     string // as typed: "run", "athena ddl"
	synopsis string // after "maruta <name> "
	about    string // printed by -h above the flags; may be empty
	fs       *flag.FlagSet
}

func newCLI(name, synopsis, about string) *cli {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors itself, on one line
	fs.Usage = func() {}
	return &cli{name: name, synopsis: synopsis, about: about, fs: fs}
}

// configFlag adds -c and its long spelling -config; both set one value,
// whose default is $MARUTA_CONFIG.
func (c *cli) configFlag(what string) *string {
	p := new(string)
	def := os.Getenv("MARUTA_CONFIG")
	c.fs.StringVar(p, "c", def, what+" (default: $MARUTA_CONFIG)")
	c.fs.StringVar(p, "config", def, "same as -c")
	return p
}

// errUsage is returned by parse after it printed help (exit 0) or a usage
// error (exit 2); code says which.
type usageExit struct{ code int }

func (u usageExit) Error() string { return fmt.Sprintf("usage (exit %d)", u.code) }

// parse parses flags anywhere in args and returns the positional arguments,
// at most maxPos of them (-1: any number). After -h or a usage error it has
// printed what it should and returns a usageExit.
func (c *cli) parse(args []string, maxPos int, stdout, stderr io.Writer) ([]string, error) {
	var pos []string
	for {
		err := c.fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			c.help(stdout)
			return nil, usageExit{0}
		}
		if err != nil {
			return nil, c.usageError(stderr, "%v", err)
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...) // after --, everything is positional
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if maxPos >= 0 && len(pos) > maxPos {
		return nil, c.usageError(stderr, "unexpected argument %q", pos[maxPos])
	}
	return pos, nil
}

// configArg resolves the config of a command that takes it as -c FILE or
// as its one positional argument.
func (c *cli) configArg(file *string, pos []string, stderr io.Writer) error {
	if len(pos) == 0 {
		return nil
	}
	set := false
	c.fs.Visit(func(f *flag.Flag) { set = set || f.Name == "c" || f.Name == "config" })
	if set {
		return c.usageError(stderr, "the config is given twice (-c %s and %s): give it once", *file, pos[0])
	}
	*file = pos[0]
	return nil
}

// usageError prints a one-line usage error and returns usageExit{2}.
func (c *cli) usageError(stderr io.Writer, format string, args ...any) error {
	fmt.Fprintf(stderr, "maruta %s: %s (usage: %s; maruta %s -h for help)\n",
		c.name, fmt.Sprintf(format, args...), c.usageLine(), c.name)
	return usageExit{2}
}

func (c *cli) usageLine() string { return strings.TrimSpace("maruta " + c.name + " " + c.synopsis) }

// help prints the command's usage and flags.
func (c *cli) help(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n", c.usageLine())
	if c.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.about))
	}
	n := 0
	c.fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		c.fs.SetOutput(w)
		c.fs.PrintDefaults()
		c.fs.SetOutput(io.Discard)
	}
}

// exitCode turns a parse or configArg error into the exit code.
func exitCode(err error) int {
	var u usageExit
	if errors.As(err, &u) {
		return u.code
	}
	return 2
}
