package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/marutalog/maruta/internal/loadgen"
)

func init() {
	commands["bench"] = command{"send Docker-shaped load to a Forward server; report records/s and ack latency", cmdBench}
}

const benchUsage = `usage: maruta bench [flags]

Emulates Docker containers (-mode docker: fluent-logger-golang configured as
Docker's fluentd log driver configures it, one record per request) or
fluentd/Fluent Bit forwarders (-mode packed: PackedForward requests of -batch
records) sending Docker-shaped records (64-hex container_id, /name, source,
a JSON log line) to a Forward server, for -duration. Reports records sent
and acknowledged per second, ack latency percentiles and, with -metrics
(maruta's HTTP address), what maruta accepted and delivered, its CPU
seconds per million records over the run and the drain that follows, its
peak RSS and buffer size.

With -mode docker -lines N, each emulated container prints N lines (-seq:
the line numbers, as 'seq 1 N' prints them) and exits; Docker holds
-pipe-bytes of printed lines between a container and its logger and closes
the logger 10s (-exit-grace) after the container exited, discarding what
is left, as a real daemon does. -containers containers run in all, -senders
at once. The report says how many lines the loggers lost and how many
maruta stored (delivered), and maruta's CPU per line.

Examples:
  maruta bench -senders 16 -batch 1000 -metrics 127.0.0.1:24220
  maruta bench -mode docker -senders 20 -lines 50000 -seq -metrics 127.0.0.1:24220
  maruta bench -mode docker -senders 200 -ack -duration 30s
  maruta bench -mode docker -async -subsecond -rate 100

Flags:
`

func cmdBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stdout, benchUsage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	var c loadgen.Config
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:24224", "Forward server address: host:port or unix:///path")
	fs.StringVar(&c.Mode, "mode", "packed", "sender kind: packed (fluentd/Fluent Bit out_forward, PackedForward requests) or docker (Docker's fluentd log driver, one Message request per record)")
	fs.IntVar(&c.Senders, "senders", 16, "concurrent senders, one connection each (docker: one container each)")
	fs.IntVar(&c.Batch, "batch", 1000, "records per PackedForward request (packed)")
	fs.BoolVar(&c.Gzip, "gzip", false, "gzip each request's entries, compressed=gzip (packed; costs the load generator CPU)")
	fs.BoolVar(&c.Ack, "ack", true, "ask for acks and wait for them: a chunk option per request (packed), fluentd-request-ack (docker); default true for packed, false for docker (Docker's default)")
	fs.IntVar(&c.Inflight, "inflight", 1, "requests a packed sender sends before it waits for the oldest ack (with -ack)")
	fs.BoolVar(&c.Async, "async", false, "fluentd-async (docker): Post queues the record, the library writes it in the background")
	fs.BoolVar(&c.SubSecond, "subsecond", false, "fluentd-sub-second-precision (docker): event times with nanoseconds")
	fs.IntVar(&c.LogSize, "log-size", loadgen.DefaultLogSize, "bytes of the JSON log line in each record (the default makes records of about 330 bytes)")
	fs.IntVar(&c.Containers, "containers", 0, "distinct containers the records of packed senders come from (default 50); docker with -lines: containers to run in all, -senders at once (default -senders)")
	fs.IntVar(&c.Lines, "lines", 0, "docker: each container prints this many lines and exits; the run ends when all have (0: senders log for -duration)")
	fs.BoolVar(&c.Seq, "seq", false, "docker: log lines are line numbers, as seq prints them, instead of JSON lines of -log-size bytes")
	fs.IntVar(&c.PipeBytes, "pipe-bytes", loadgen.DefaultPipeBytes, "docker with -lines: bytes of printed lines Docker holds between a container and its logger")
	fs.DurationVar(&c.ExitGrace, "exit-grace", 10*time.Second, "docker with -lines: how long Docker lets the logger send after the container exited (then the rest is lost)")
	fs.StringVar(&c.Tag, "tag", "docker.{name}", "tag of each sender; {i} is the sender number, {name} its container name, {id} its 12-hex short id")
	fs.Float64Var(&c.Rate, "rate", 0, "records per second per sender (0: as fast as acks, or TCP, allow)")
	fs.DurationVar(&c.Duration, "duration", 0, "how long to send (default 10s; with -lines a bound, default 30m)")
	fs.DurationVar(&c.Warmup, "warmup", time.Second, "first part of -duration not counted in the rates and latencies")
	fs.DurationVar(&c.AckTimeout, "ack-timeout", 60*time.Second, "longest wait for one ack, and for the acks still due when the run ends")
	fs.StringVar(&c.Metrics, "metrics", "", "maruta's HTTP address (host:port or URL): read its counters, CPU and RSS, and wait for the drain")
	fs.IntVar(&c.PID, "pid", 0, "maruta's process id: CPU and RSS from /proc/<pid>/stat instead of the metrics")
	fs.DurationVar(&c.Drain, "drain", 2*time.Minute, "after sending, longest wait until maruta delivered everything it accepted (with -metrics)")
	fs.DurationVar(&c.Interval, "interval", time.Second, "progress line and timeline period")
	seed := fs.Uint64("seed", 1, "seed of container ids and record contents")
	jsonOut := fs.Bool("json", false, "print the result as JSON (with a per-interval timeline) instead of text")
	jsonFile := fs.String("json-file", "", "also write the JSON result to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "maruta bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	c.Seed = *seed
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["ack"] && c.Mode == "docker" {
		c.Ack = false // Docker's driver asks for no acks unless told to
	}
	if !set["warmup"] && c.Lines > 0 {
		c.Warmup = 0 // the containers' whole run is measured
	}
	if !*quiet {
		c.Progress = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Run(ctx, c)
	if err != nil && res == nil {
		fmt.Fprintf(stderr, "maruta bench: %v\n", err)
		return 1
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		res.WriteText(stdout)
	}
	if *jsonFile != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if werr := os.WriteFile(*jsonFile, append(b, '\n'), 0o644); werr != nil {
			fmt.Fprintf(stderr, "maruta bench: %v\n", werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "maruta bench: %v\n", err)
		return 1
	}
	return 0
}
