package sinks

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	tu "github.com/marutalog/maruta/internal/testutil"
	"github.com/marutalog/maruta/sinks/sinktest"
)

const tdKey = "1/0123456789abcdef0123456789abcdef01234567"

func newTDSink(t *testing.T, srv *tu.TDServer, extra string) (*TreasureData, *prometheus.Registry) {
	t.Helper()
	_, out := sinktest.Output(t, t.TempDir(), fmt.Sprintf(`  - type: treasure_data
    name: td
    apikey: %q
    endpoint: %s
    api_endpoint: %s
%s`, tdKey, srv.URL, srv.URL, extra))
	reg := prometheus.NewRegistry()
	s, err := NewTreasureData(Options{Output: out, Node: "node-1", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, reg
}

// eventSplitChunk is what the event-split fixture routes to its TD store:
// tags shop.event.<type>, records with their own "time" string.
func eventSplitChunk(t *testing.T, id string, n int) *sinktest.Chunk {
	c := &sinktest.Chunk{ChunkInfo: delivery.ChunkInfo{ID: id, Output: "td", Tag: "shop.event.purchase", Created: time.Now()}}
	base := time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)
	for i := range n {
		typ := []string{"purchase", "login", "cart_add"}[i%3]
		rec := sinktest.Msgpack(t, map[string]any{"event_type": typ, "user": fmt.Sprintf("u%d", i), "amount": i * 100,
			"time": "2026-11-22T13:00:00Z", "note": "日本語 ✓"})
		c.Events = append(c.Events, sinktest.Event{Tag: "shop.event." + typ, Time: event.FromUnix(base.Unix()+int64(i), 250e6), Record: rec})
		c.Bytes += int64(len(rec))
	}
	c.ChunkInfo.Events = int64(n)
	return c
}

func TestTreasureDataImportsPerTableOnce(t *testing.T) {
	srv := tu.StartTD(t, tdKey)
	s, reg := newTDSink(t, srv, "    database: shop\n    table: event_${tag_parts[2]}\n")
	c := eventSplitChunk(t, "c1", 30)
	if err := s.Write(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if errs := srv.Errors(); len(errs) > 0 {
		t.Fatalf("the server refused: %v", errs)
	}
	if got := strings.Join(srv.Tables(), " "); got != "shop.event_cart_add shop.event_login shop.event_purchase" {
		t.Fatalf("tables %s", got)
	}
	// auto_create_table: the database and the tables were created.
	if _, _, creates := srv.Stats(); !strings.Contains(strings.Join(creates, ","), "database shop") {
		t.Errorf("creates: %v", creates)
	}
	base := time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC).Unix()
	for k, typ := range []string{"purchase", "login", "cart_add"} {
		rows := srv.Rows("shop", "event_"+typ)
		if len(rows) != 10 {
			t.Fatalf("%s: %d rows, want 10", typ, len(rows))
		}
		for j, r := range rows {
			i := k + 3*j
			// time is the event time in whole seconds, replacing the record's.
			if fmt.Sprint(r["time"]) != fmt.Sprint(base+int64(i)) || r["user"] != fmt.Sprintf("u%d", i) || r["note"] != "日本語 ✓" || r["event_type"] != typ {
				t.Errorf("%s row %d: %v", typ, j, r)
			}
		}
	}
	if h := srv.LastHeader(); h.Get("Content-Type") != "application/octet-stream" || h.Get("Authorization") != "TD1 "+tdKey {
		t.Errorf("headers %v", h)
	}
	// The buffer retries the chunk (say its delete failed): the same ids,
	// so TD imports nothing twice.
	if err := s.Write(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	imports, dups, _ := srv.Stats()
	if imports != 6 || dups != 3 || len(srv.Rows("shop", "event_login")) != 10 {
		t.Errorf("after a resend: %d imports, %d duplicates, %d login rows; want 6, 3, 10", imports, dups, len(srv.Rows("shop", "event_login")))
	}
	// Another chunk gets other ids.
	if err := s.Write(context.Background(), eventSplitChunk(t, "c2", 3)); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Rows("shop", "event_login")); n != 11 {
		t.Errorf("login rows after a second chunk: %d, want 11", n)
	}
	if got := testutil.ToFloat64(s.sm.rows); got != 63 {
		t.Errorf("rows metric %v, want 63 (30, the resend's 30 again, 3)", got)
	}
	_ = reg
}

func TestTreasureDataErrors(t *testing.T) {
	t.Run("retryable", func(t *testing.T) {
		srv := tu.StartTD(t, tdKey)
		srv.CreateTable("shop", "event_login")
		s, _ := newTDSink(t, srv, "    database: shop\n    table: event_${tag_parts[2]}\n")
		c := &sinktest.Chunk{ChunkInfo: delivery.ChunkInfo{ID: "r1"}, Events: []sinktest.Event{
			{Tag: "shop.event.login", Time: event.FromUnix(1700000000, 0), Record: sinktest.Msgpack(t, map[string]any{"a": 1})}}}
		for _, st := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
			srv.Fail(st)
			err := s.Write(context.Background(), c)
			if err == nil || delivery.IsPermanent(err) || !strings.Contains(err.Error(), fmt.Sprint(st)) {
				t.Errorf("status %d: got %v, want a retryable error naming it", st, err)
			}
		}
		if err := s.Write(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		if n := len(srv.Rows("shop", "event_login")); n != 1 {
			t.Errorf("%d rows, want 1", n)
		}
	})
	t.Run("bad key", func(t *testing.T) {
		srv := tu.StartTD(t, "another key")
		s, _ := newTDSink(t, srv, "    database: shop\n    table: t_${tag_parts[2]}\n")
		err := s.Write(context.Background(), eventSplitChunk(t, "k1", 3))
		if !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), tdKey) {
			t.Errorf("refused key: got %v, want a Permanent 401 without the key in it", err)
		}
	})
	t.Run("no auto create", func(t *testing.T) {
		srv := tu.StartTD(t, tdKey)
		s, _ := newTDSink(t, srv, "    database: shop\n    table: event_${tag_parts[2]}\n    auto_create_table: false\n")
		err := s.Write(context.Background(), eventSplitChunk(t, "n1", 3))
		if !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "404") {
			t.Errorf("missing table without auto_create_table: got %v, want Permanent 404", err)
		}
		if tb := srv.Tables(); len(tb) != 0 {
			t.Errorf("tables created: %v", tb)
		}
	})
	t.Run("missing key", func(t *testing.T) {
		srv := tu.StartTD(t, tdKey)
		s, _ := newTDSink(t, srv, "    database: shop\n    table: ${kind}\n")
		c := eventSplitChunk(t, "m1", 3)
		err := s.Write(context.Background(), c)
		if !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "3 events have no value for ${kind}") {
			t.Errorf("got %v, want Permanent naming ${kind}", err)
		}
		if imports, _, _ := srv.Stats(); imports != 0 {
			t.Errorf("%d imports before the error; a chunk that cannot be routed whole sends nothing", imports)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		srv := tu.StartTD(t, tdKey)
		srv.Close()
		s, _ := newTDSink(t, srv, "    database: shop\n    table: t_${tag_parts[2]}\n")
		err := s.Write(context.Background(), eventSplitChunk(t, "u1", 3))
		if err == nil || delivery.IsPermanent(err) || !strings.Contains(err.Error(), "connect") {
			t.Errorf("unreachable endpoint: got %v, want a retryable connect error", err)
		}
		if got := testutil.ToFloat64(s.sm.errors.WithLabelValues(kindNetwork)); got != 1 {
			t.Errorf("network errors %v", got)
		}
	})
}

// TestTreasureDataParts: a table's events beyond the import limit go in
// several imports, each with its own id, all of them once.
func TestTreasureDataParts(t *testing.T) {
	defer func(l int) { tdImportLimit = l }(tdImportLimit)
	tdImportLimit = 1000
	srv := tu.StartTD(t, tdKey)
	s, _ := newTDSink(t, srv, "    database: shop\n    table: events\n")
	c := eventSplitChunk(t, "p1", 40)
	for range 2 {
		if err := s.Write(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	imports, dups, _ := srv.Stats()
	if rows := srv.Rows("shop", "events"); len(rows) != 40 || imports < 4 || dups != imports/2 {
		t.Errorf("%d rows in %d imports (%d duplicates); want 40 rows, several parts, the second write all duplicates", len(rows), imports, dups)
	}
}
