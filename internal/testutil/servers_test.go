package testutil

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/vmihailenco/msgpack/v5"
)

// TestCWLServerEnforces proves the CloudWatch Logs test server is not
// lenient: each batch the real service refuses is refused, through the
// real SDK.
func TestCWLServerEnforces(t *testing.T) {
	s := StartCWL(t)
	s.CreateStream("g", "s")
	client := func(secret string) *cloudwatchlogs.Client {
		return cloudwatchlogs.New(cloudwatchlogs.Options{Region: s.Region, BaseEndpoint: aws.String(s.URL),
			Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, secret, ""), RetryMaxAttempts: 1})
	}
	good := client(s.SecretKey)
	now := time.Now().UnixMilli()
	ev := func(ts int64, msg string) cwtypes.InputLogEvent {
		return cwtypes.InputLogEvent{Timestamp: aws.Int64(ts), Message: aws.String(msg)}
	}
	many := func(n, size int) []cwtypes.InputLogEvent {
		var out []cwtypes.InputLogEvent
		for range n {
			out = append(out, ev(now, strings.Repeat("a", size)))
		}
		return out
	}
	put := func(c *cloudwatchlogs.Client, stream string, evs []cwtypes.InputLogEvent) error {
		_, err := c.PutLogEvents(context.Background(), &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String(stream), LogEvents: evs})
		return err
	}
	if err := put(good, "s", many(10000, 1)); err != nil {
		t.Fatalf("10,000 events: %v", err)
	}
	if err := put(good, "s", many(1, 1048550)); err != nil {
		t.Fatalf("a 1 MB event: %v", err)
	}
	if err := put(good, "s", []cwtypes.InputLogEvent{ev(now-int64(24*time.Hour/time.Millisecond), "a"), ev(now, "b")}); err != nil {
		t.Fatalf("24 hours exactly: %v", err)
	}
	for _, c := range []struct {
		name, want string
		client     *cloudwatchlogs.Client
		stream     string
		evs        []cwtypes.InputLogEvent
	}{
		{"10,001 events", "InvalidParameterException", good, "s", many(10001, 1)},
		{"batch bytes", "Upload too large", good, "s", many(2, 524263)}, // 2 × (524263+26) > 1,048,576
		{"event size", "exceeds the 1 MB event limit", good, "s", many(1, 1048551)},
		{"order", "chronological order", good, "s", []cwtypes.InputLogEvent{ev(now, "b"), ev(now-1, "a")}},
		{"span", "24 hours", good, "s", []cwtypes.InputLogEvent{ev(now-int64(25*time.Hour/time.Millisecond), "a"), ev(now, "b")}},
		{"empty", "empty message", good, "s", []cwtypes.InputLogEvent{ev(now, "")}},
		{"signature", "signature does not match", client("wrong secret"), "s", many(1, 1)},
		{"stream", "ResourceNotFoundException", good, "missing", many(1, 1)},
		{"stream name", "logStreamName", good, "a:b", many(1, 1)},
	} {
		before := len(s.Violations())
		err := put(c.client, c.stream, c.evs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error about %s", c.name, err, c.want)
		}
		if c.want != "ResourceNotFoundException" && len(s.Violations()) != before+1 {
			t.Errorf("%s: not recorded as a violation", c.name)
		}
	}
	if n := len(s.Events("g", "s")); n != 10003 {
		t.Errorf("%d events stored, want only the 10,003 of the accepted batches", n)
	}
}

// TestTDServerEnforces: the TD test server refuses what TD refuses.
func TestTDServerEnforces(t *testing.T) {
	s := StartTD(t, "key")
	s.CreateTable("db1", "tb1")
	gz := func(vals ...any) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		for _, v := range vals {
			p, _ := msgpack.Marshal(v)
			zw.Write(p)
		}
		zw.Close()
		return b.Bytes()
	}
	const path = "/v3/table/import_with_id/db1/tb1/0123456789abcdef0123456789abcdef/msgpack.gz"
	for _, c := range []struct {
		name, path, auth, ctype string
		body                    []byte
		want                    int
	}{
		{"ok", path, "TD1 key", "application/octet-stream", gz(map[string]any{"time": 1, "a": "b"}), 200},
		{"again", path, "TD1 key", "application/octet-stream", gz(map[string]any{"time": 1, "a": "b"}), 200},
		{"auth", path, "TD1 other", "application/octet-stream", gz(map[string]any{"time": 1}), 401},
		{"content type", path, "TD1 key", "application/json", gz(map[string]any{"time": 1}), 415},
		{"not gzip", path, "TD1 key", "application/octet-stream", []byte("{}"), 400},
		{"no time", path, "TD1 key", "application/octet-stream", gz(map[string]any{"a": 1}), 400},
		{"string time", path, "TD1 key", "application/octet-stream", gz(map[string]any{"time": "1"}), 400},
		{"not a map", path, "TD1 key", "application/octet-stream", gz([]any{1}), 400},
		{"unique id", strings.Replace(path, "0123456789abcdef0123456789abcdef", "x", 1), "TD1 key", "application/octet-stream", gz(map[string]any{"time": 1}), 400},
		{"table", strings.Replace(path, "tb1", "missing", 1), "TD1 key", "application/octet-stream", gz(map[string]any{"time": 1}), 404},
	} {
		req, _ := http.NewRequest(http.MethodPut, s.URL+c.path, bytes.NewReader(c.body))
		req.Header.Set("Authorization", c.auth)
		req.Header.Set("Content-Type", c.ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
	if rows := s.Rows("db1", "tb1"); len(rows) != 1 {
		t.Errorf("%d rows, want 1 (the second import had the same id)", len(rows))
	}
	if _, dups, _ := s.Stats(); dups != 1 {
		t.Errorf("%d duplicates, want 1", dups)
	}
}
