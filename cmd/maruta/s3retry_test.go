package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/testutil"
)

// TestS3FailedUploadOneLinePerAttempt: an S3 that throttles every upload,
// an output with retry_max_times: 2. Each buffer attempt is one HTTP try
// (the SDK does not retry behind it: 3 tries, not 9) and one WARN line;
// the last goes to the dead letter with one ERROR line; the sink adds no
// line of its own.
func TestS3FailedUploadOneLinePerAttempt(t *testing.T) {
	srv := testutil.StartS3(t)
	srv.CreateBucket(t, "logs")
	proxy := srv.FaultProxy(t, func(op string, _ int) bool { return op == "PutObject" })
	dir := t.TempDir()
	cfg := writeFile(t, dir, "m.yaml", fmt.Sprintf(`data_dir: %s/data
http: {listen: 127.0.0.1:0}
sources:
  - type: forward
    listen: 127.0.0.1:0
outputs:
  - type: s3
    name: lake
    bucket: logs
    endpoint: %s
    access_key_id: %s
    secret_access_key: %s
    format: jsonl
    buffer:
      flush_interval: 1s
      retry_wait: 50ms
      retry_max_interval: 100ms
      retry_randomize: false
      retry_max_times: 2
`, dir, proxy.URL, srv.AccessKey, srv.SecretKey))
	p := startMaruta(t, dir, nil, "-c", cfg)
	f := dockerLogger(t, p.Forward, false)
	for i := range 10 {
		if err := f.Post("docker.web", dockerRecord("web", "stdout", fmt.Sprintf("line %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	testutil.WaitUntil(t, 30*time.Second, "the chunk in the dead letter", func() bool {
		return p.metric("maruta_buffer_dead_lettered_chunks_total") == 1
	})
	p.stop(30 * time.Second)
	if n := proxy.Count("PutObject"); n != 3 {
		t.Errorf("PutObject sent %d times for retry_max_times: 2, want 3 (one per attempt)", n)
	}
	var retries, dead, sink int
	for _, line := range strings.Split(p.logs.String(), "\n") {
		switch {
		case strings.Contains(line, `"msg":"chunk delivery failed; will retry"`):
			retries++
			if !strings.Contains(line, "(throttle)") || !strings.Contains(line, "SlowDown") {
				t.Errorf("the attempt's line does not say why: %s", line)
			}
		case strings.Contains(line, `"msg":"chunk moved to the dead-letter folder"`):
			dead++
		case strings.Contains(line, `"component":"sink"`) && (strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`)):
			sink++
		}
	}
	if retries != 2 || dead != 1 || sink != 0 {
		t.Errorf("%d retry lines, %d dead-letter lines, %d sink lines; want 2, 1, 0:\n%s", retries, dead, sink, p.logs)
	}
}
