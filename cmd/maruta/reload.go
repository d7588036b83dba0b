package main

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

func init() {
	commands["reload"] = command{"make a running maruta reload its config (same as SIGHUP, but reports errors)", cmdReload}
}

// cmdReload asks a running maruta, through its HTTP server, to reload its
// config file. If the new config is invalid maruta keeps running the old one
// and this command prints why and exits 1.
func cmdReload(args []string, stdout, stderr io.Writer) int {
	c := newCLI("reload", "[-c FILE] [-addr HOST:PORT]",
		"Asks the running maruta to reload its config file (as SIGHUP does) and\nprints why when the new config is refused (maruta keeps the old one).")
	addr := c.fs.String("addr", "", "HTTP address of maruta (default: http.listen of -c or $MARUTA_CONFIG, else $MARUTA_HTTP_LISTEN, else 127.0.0.1:24220)")
	file := c.configFlag("config file to read http.listen from")
	if _, err := c.parse(args, 0, stdout, stderr); err != nil {
		return exitCode(err)
	}
	target, err := httpTarget(*addr, *file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	hc := &http.Client{Timeout: 2 * time.Minute}
	resp, err := hc.Post("http://"+target+"/-/reload", "text/plain", nil)
	if err != nil {
		fmt.Fprintf(stderr, "reload: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "reload refused, still running the previous config:\n%s", body)
		return 1
	}
	fmt.Fprintf(stdout, "%s", body)
	return 0
}
