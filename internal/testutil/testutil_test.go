package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// stopDockerAfter stops the shared Docker daemon once the tests ran.
type stopDockerAfter struct{ m *testing.M }

func (s stopDockerAfter) Run() int {
	defer StopDocker()
	return s.m.Run()
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(stopDockerAfter{m},
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

func TestDuckDBExactValues(t *testing.T) {
	db := NewDuckDB(t)
	r := db.Query(t, `SELECT 9223372036854775807::BIGINT AS big, (-9223372036854775808)::BIGINT AS small,
		TIMESTAMPTZ '2026-11-22 13:04:05.123+00' AS ts, epoch_ms(TIMESTAMP '2026-11-22 13:04:05.123') AS ms,
		'' AS empty, NULL AS n, MAP {'a': 'b'} AS m, 1.5::DOUBLE AS d`)
	row := r.Maps()[0]
	for k, want := range map[string]string{
		"big": "9223372036854775807", "small": "-9223372036854775808", "ms": "1795352645123",
		"ts": "2026-11-22 13:04:05.123+00", "empty": "", "n": "<nil>", "m": "[map[key:a value:b]]", "d": "1.5",
	} {
		if got := fmt.Sprint(row[k]); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, err := db.Run("SELECT * FROM nope"); err == nil {
		t.Error("a failing query returned no error")
	}
	// BytesRead counts what a query reads from files.
	dir := t.TempDir()
	p := filepath.Join(dir, "x.parquet")
	db.Query(t, "COPY (SELECT i, repeat('x', 1000) || i AS s FROM range(10000) t(i)) TO "+SQLString(p)+" (COMPRESSION uncompressed)")
	_, all := db.BytesRead(t, "SELECT sum(length(s)) FROM read_parquet("+SQLString(p)+")")
	_, few := db.BytesRead(t, "SELECT sum(i) FROM read_parquet("+SQLString(p)+")")
	if all < 10_000_000 || few > all/10 {
		t.Errorf("bytes read: %d for the string column, %d for the integer column", all, few)
	}
}

func TestS3ServerRestartKeepsData(t *testing.T) {
	s := StartS3(t)
	s.CreateBucket(t, "bucket")
	s.PutObject(t, "bucket", "k/x", []byte("hello"))
	s.Stop()
	s.Stop() // twice is fine
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	objs := s.Objects(t, "bucket", "k/")
	if len(objs) != 1 || objs[0].Key != "k/x" || objs[0].Size != 5 {
		t.Fatalf("objects %v", objs)
	}
	dir := t.TempDir()
	paths := s.Download(t, "bucket", "", dir)
	data, _ := os.ReadFile(paths[0])
	if string(data) != "hello" {
		t.Errorf("downloaded %q", data)
	}
}

// TestDockerRunsBusybox starts the daemon, runs a container of the
// imported busybox image and reads its output; StopDocker then leaves
// no mount and no folder behind.
func TestDockerRunsBusybox(t *testing.T) {
	d := StartDocker(t)
	if d2 := StartDocker(t); d2 != d {
		t.Fatal("a second StartDocker started a second daemon")
	}
	out := d.Run(t, "run", "--rm", "--network", "none", d.Image, "sh", "-c", "seq 1 3; printf 'x%.0s' 1 2 | tr x y")
	if out != "1\n2\n3\nyy" {
		t.Fatalf("container printed %q", out)
	}
	if _, err := d.cmdOutput(nil, "run", "--rm", "--network", "none", d.Image, "no-such-command"); err == nil {
		t.Error("a failing container reported no error")
	}
}
