package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/testutil"
)

func reloadConfig(dir, listen string, extra string) string {
	return fmt.Sprintf(`
node: n1
data_dir: %[1]s/data
http: {listen: "127.0.0.1:0"}
sources:
  - type: forward
    listen: %[2]s
outputs:
  - type: file
    name: a
    match: a.**
    format: jsonl
    path: %[1]s/%[3]s/
    buffer: {flush_interval: 200ms}
%[4]s  - type: null
    name: rest
`, dir, listen, map[bool]string{true: "out-a2", false: "out-a"}[extra != ""], extra)
}

// jsonlLines returns the lines of every .jsonl file under dir.
func jsonlLines(t *testing.T, dir string) []string {
	t.Helper()
	var lines []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".jsonl") {
			b, _ := os.ReadFile(p)
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if l != "" {
					lines = append(lines, l)
				}
			}
		}
		return nil
	})
	return lines
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	listen := freeTCPPort(t)
	cfgPath := writeFile(t, dir, "m.yaml", reloadConfig(dir, listen, ""))
	p := startMaruta(t, dir, nil, "-c", cfgPath)
	f := dockerLogger(t, p.Forward, false) // one connection, kept across reloads
	defer f.Close()
	post := func(tag, id string) {
		t.Helper()
		if err := f.Post(tag, map[string]string{"id": id}); err != nil {
			t.Fatal(err)
		}
	}
	post("a.x", "1")
	post("b.x", "2") // → null before the reload

	// An invalid config is refused with its reason; the old one keeps running.
	writeFile(t, dir, "m.yaml", reloadConfig(dir, listen, "")+"    bogus: 1\n")
	code, _, errs := runCLI(t, "reload", "-addr", p.HTTP)
	if code != 1 || !strings.Contains(errs, `rest.bogus`) && !strings.Contains(errs, `unknown key "bogus"`) {
		t.Fatalf("invalid reload: exit %d, %q", code, errs)
	}
	post("a.x", "3")

	// A valid config: output a changes its path, output b is added. SIGHUP.
	added := "  - type: file\n    name: b\n    match: b.**\n    format: jsonl\n    path: " + dir + "/out-b/\n    buffer: {flush_interval: 200ms}\n"
	writeFile(t, dir, "m.yaml", reloadConfig(dir, listen, added))
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitUntil(t, 20*time.Second, "reloaded log line", func() bool { return strings.Contains(p.logs.String(), `"msg":"reloaded"`) })
	post("a.x", "4")
	post("b.x", "5")

	code, body := p.get("/api/status")
	var st appStatus
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || len(st.Outputs) != 2 {
		t.Fatalf("/api/status = %d %v %s", code, err, body)
	}
	if code, _ := p.get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d", code)
	}
	p.stop(30 * time.Second)

	ids := func(lines []string) string {
		var out []string
		for _, l := range lines {
			var r struct{ ID string }
			json.Unmarshal([]byte(l), &r)
			out = append(out, r.ID)
		}
		return strings.Join(out, ",")
	}
	if got := ids(jsonlLines(t, filepath.Join(dir, "out-a"))); got != "1,3" {
		t.Errorf("out-a (before reload) = %q, want 1,3", got)
	}
	if got := ids(jsonlLines(t, filepath.Join(dir, "out-a2"))); got != "4" {
		t.Errorf("out-a2 (after reload) = %q, want 4", got)
	}
	if got := ids(jsonlLines(t, filepath.Join(dir, "out-b"))); got != "5" {
		t.Errorf("out-b (added) = %q, want 5", got)
	}
	if n := strings.Count(p.logs.String(), `"msg":"listening"`); n != 1 {
		t.Errorf("the unchanged listener was restarted: %d listening lines", n)
	}
}

// TestReloadRebuildsFailedOutput: an output whose rebuild failed at a
// reload (its buffer folder cannot be made) refuses events, and the next
// reload builds it again even though the config did not change.
func TestReloadRebuildsFailedOutput(t *testing.T) {
	dir := t.TempDir()
	listen := freeTCPPort(t)
	cfgPath := writeFile(t, dir, "m.yaml", reloadConfig(dir, listen, ""))
	p := startMaruta(t, dir, nil, "-c", cfgPath)

	// Output a moves its buffer under a regular file: the rebuild fails.
	blocker := writeFile(t, dir, "blocker", "")
	broken := strings.Replace(reloadConfig(dir, listen, ""), "buffer: {flush_interval: 200ms}",
		"buffer: {flush_interval: 200ms, path: "+blocker+"/buf}", 1)
	writeFile(t, dir, "m.yaml", broken)
	if code, out, errs := runCLI(t, "reload", "-addr", p.HTTP); code != 0 {
		t.Fatalf("reload: exit %d, %s%s", code, out, errs)
	}
	if !strings.Contains(p.logs.String(), "output could not be rebuilt") {
		t.Fatalf("the rebuild did not fail: %s", p.logs.String())
	}

	// The folder can be made now; the same config again rebuilds output a.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "reload", "-addr", p.HTTP); code != 0 {
		t.Fatalf("reload: exit %d, %s%s", code, out, errs)
	}
	c := fluentConfig(t, p.Forward)
	// A refused event is not acked: fail after a few seconds, not hang.
	c.RequestAck, c.MaxRetry, c.ReadTimeout, c.WriteTimeout = true, 2, 3*time.Second, 3*time.Second
	f := newFluent(t, c)
	defer f.Close()
	if err := f.Post("a.x", map[string]string{"id": "1"}); err != nil {
		t.Fatalf("output a still refuses events after the second reload: %v", err)
	}
	p.stop(30 * time.Second)
	if got := jsonlLines(t, filepath.Join(dir, "out-a")); len(got) != 1 || !strings.Contains(got[0], `"id":"1"`) {
		t.Errorf("out-a = %q, want the event", got)
	}
}
