package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func init() {
	commands["healthcheck"] = command{"probe a running maruta's /healthz (or /readyz) for container health checks", cmdHealthcheck}
}

// cmdHealthcheck exits 0 when the running maruta answers 200. The image has
// no shell or curl, so its HEALTHCHECK runs this.
func cmdHealthcheck(args []string, stdout, stderr io.Writer) int {
	c := newCLI("healthcheck", "[-c FILE] [-addr HOST:PORT] [-ready]",
		"Exits 0 when the running maruta's /healthz (or /readyz) answers 200; the\nimage's HEALTHCHECK runs it. It finds maruta's HTTP address in the config\nrun reads: -c FILE or $MARUTA_CONFIG (only http.listen is read).")
	addr := c.fs.String("addr", "", "HTTP address of maruta (default: http.listen of -c or $MARUTA_CONFIG, else $MARUTA_HTTP_LISTEN, else 127.0.0.1:24220)")
	file := c.configFlag("config file to read http.listen from")
	ready := c.fs.Bool("ready", false, "probe /readyz (delivering, buffer below high-water) instead of /healthz (alive)")
	timeout := c.fs.Duration("timeout", 3*time.Second, "request timeout")
	if _, err := c.parse(args, 0, stdout, stderr); err != nil {
		return exitCode(err)
	}
	target, err := httpTarget(*addr, *file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	hc := &http.Client{Timeout: *timeout}
	resp, err := hc.Get("http://" + target + path)
	if err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "unhealthy: %s %s\n%s", path, resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "%s", body)
	return 0
}

// httpTarget picks the address to reach maruta's HTTP server, turning an
// all-interfaces bind address into loopback.
func httpTarget(addr, file string) (string, error) {
	if addr == "" && file != "" {
		cfg, _, err := loadConfigWith(file, loadHTTP)
		if err != nil {
			return "", err
		}
		addr = cfg.HTTP.Listen
	}
	if addr == "" {
		addr = os.Getenv("MARUTA_HTTP_LISTEN")
	}
	if addr == "" {
		addr = "127.0.0.1:24220"
	}
	if addr == "off" {
		return "", fmt.Errorf("http.listen is off: nothing to probe")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("bad address %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" || strings.EqualFold(host, "[::]") {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
