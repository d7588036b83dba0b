package main

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/marutalog/maruta/internal/testutil"
)

// dockerDefaultLogger is fluent-logger-golang as Docker's fluentd log
// driver configures it with its default options (blocking, no ack, no
// sub-second times), except that retries are fewer and shorter so that a
// test ends.
func dockerDefaultLogger(t testing.TB, addr string) *fluent.Fluent {
	t.Helper()
	c := fluentConfig(t, addr)
	c.MaxRetry = 3 // Docker: math.MaxInt32
	c.WriteTimeout = 5 * time.Second
	return newFluent(t, c)
}

// TestShutdownStoresWhatWasSent: SIGTERM in the middle of a burst from
// Docker-configured clients (one request per line, no ack). maruta stops
// accepting but reads every open connection until it is quiet, so every
// line a client wrote without error is in the Parquet lake after a restart
// (which delivers what the shutdown left on disk) — once.
func TestShutdownStoresWhatWasSent(t *testing.T) {
	dir := t.TempDir()
	env := []string{"MARUTA_LISTEN=127.0.0.1:0", "MARUTA_HTTP_LISTEN=127.0.0.1:0"}
	p := startMaruta(t, dir, env)

	const clients, lines = 8, 6000
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		f := dockerDefaultLogger(t, p.Forward)
		name := fmt.Sprintf("app-%d", c)
		wg.Go(func() {
			defer f.Close()
			for i := range lines {
				if err := f.Post("docker."+name, dockerRecord(name, "stdout", fmt.Sprintf("%s %d", name, i))); err != nil {
					failed.Add(int64(lines - i))
					return
				}
				sent.Add(1)
			}
		})
	}
	// SIGTERM mid-burst: the clients go on writing on their connections.
	testutil.WaitUntil(t, 30*time.Second, "half the burst sent", func() bool { return sent.Load() >= clients*lines/2 })
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		p.stop(60 * time.Second)
	}()
	wg.Wait()
	<-stopped
	if failed.Load() != 0 {
		t.Errorf("%d lines not sent (a write failed), %d sent: maruta closed connections that were not quiet", failed.Load(), sent.Load())
	}

	// Restart: whatever the shutdown left on disk is delivered.
	p = startMaruta(t, dir, env)
	testutil.WaitUntil(t, 30*time.Second, "the buffer to be empty", func() bool {
		return p.metric("maruta_buffer_chunks", `state="queued"`) == 0
	})
	p.stop(60 * time.Second)

	db := testutil.NewDuckDB(t)
	src := "read_parquet(" + testutil.SQLString(dir+"/maruta-data/lake/**/*.parquet") + ", hive_partitioning=true, union_by_name=true)"
	r := db.Query(t, "SELECT count(*) AS n, count(DISTINCT log) AS lines FROM "+src).Maps()
	n, distinct := fmt.Sprint(r[0]["n"]), fmt.Sprint(r[0]["lines"])
	if want := strconv.FormatInt(sent.Load(), 10); n != want || distinct != want {
		t.Fatalf("lake holds %s rows, %s distinct lines; the clients wrote %s without error\n%s", n, distinct, want, p.logs)
	}
}
