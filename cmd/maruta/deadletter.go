package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/marutalog/maruta/buffer"
	"github.com/marutalog/maruta/internal/config"
)

func init() {
	commands["deadletter"] = command{"list or re-send dead-lettered chunks (list | resend)", cmdDeadletter}
}

// cmdDeadletter lists dead-lettered chunks, or moves them back into their
// output's buffer to be sent again. A running maruta picks re-sent chunks up
// within seconds; a stopped one at its next start.
func cmdDeadletter(args []string, stdout, stderr io.Writer) int {
	c := newCLI("deadletter", "list|resend [flags]", "Subcommands:\n  list     list dead-lettered chunks\n  resend   queue dead-lettered chunks to be sent again")
	if len(args) == 0 || (args[0] != "list" && args[0] != "resend") {
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			return exitCode(c.usageError(stderr, "unknown subcommand %q", args[0]))
		}
		if _, err := c.parse(args, 0, stdout, stderr); err != nil {
			return exitCode(err)
		}
		return exitCode(c.usageError(stderr, "which subcommand?"))
	}
	sub := args[0]
	maxPos, synopsis := 0, "[-c FILE] [-output NAME] [-json]"
	if sub == "resend" {
		maxPos, synopsis = -1, "[-c FILE] [-output NAME] [ID ...]   (no ID: every chunk of the output(s))"
	}
	c = newCLI("deadletter "+sub, synopsis, "")
	file := c.configFlag("config file; none: the embedded default")
	only := c.fs.String("output", "", "only this output")
	asJSON := new(bool)
	if sub == "list" {
		c.fs.BoolVar(asJSON, "json", false, "list as JSON")
	}
	ids, err := c.parse(args[1:], maxPos, stdout, stderr)
	if err != nil {
		return exitCode(err)
	}
	cfg, _, err := loadConfigWith(*file, loadDeadletter)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var outs []*config.Output
	for _, o := range cfg.LeafOutputs() {
		if o.BufferConfig() != nil && (*only == "" || o.Name == *only) {
			outs = append(outs, o)
		}
	}
	if len(outs) == 0 {
		fmt.Fprintf(stderr, "no buffered output named %q\n", *only)
		return 1
	}
	deadDir := func(o *config.Output) string { return filepath.Join(cfg.DataDir, "deadletter", o.Name) }

	if sub == "resend" {
		if len(ids) > 0 && len(outs) > 1 {
			fmt.Fprintln(stderr, "resend with chunk ids needs -output NAME")
			return 2
		}
		total := 0
		for _, o := range outs {
			n, err := buffer.Requeue(deadDir(o), o.BufferConfig().Path, ids)
			total += n
			if err != nil {
				fmt.Fprintf(stderr, "output %s: %v\n", o.Name, err)
				return 1
			}
			if n > 0 {
				fmt.Fprintf(stdout, "output %s: %d chunk(s) queued to be sent again\n", o.Name, n)
			}
		}
		if total == 0 {
			fmt.Fprintln(stdout, "nothing to re-send")
		}
		return 0
	}

	var all []buffer.DeadLetter
	for _, o := range outs {
		dl, err := buffer.ListDeadLetters(deadDir(o))
		if err != nil {
			fmt.Fprintf(stderr, "output %s: %v\n", o.Name, err)
			return 1
		}
		all = append(all, dl...)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if all == nil {
			all = []buffer.DeadLetter{}
		}
		enc.Encode(all)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTPUT\tID\tEVENTS\tBYTES\tSLICE\tREASON\tERROR")
	for _, d := range all {
		slice := "-"
		if !d.Slice.IsZero() {
			slice = d.Slice.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", d.Output, d.ID, d.Events, d.Bytes, slice, d.Reason, d.Error)
	}
	tw.Flush()
	if len(all) == 0 {
		fmt.Fprintln(stdout, "no dead-lettered chunks")
	}
	return 0
}
