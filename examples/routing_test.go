package examples_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/router"
)

// routed is one event an output received.
type routed struct {
	output, tag string
	time        event.Time
	raw         []byte
	rec         map[string]any
}

// collector is every leaf output of a config, recording what reaches it.
type collector struct {
	mu  sync.Mutex
	got []routed
}

func (c *collector) consumers(cfg *config.Config) map[string]event.Consumer {
	out := map[string]event.Consumer{}
	for _, o := range cfg.LeafOutputs() {
		name := o.Name
		out[name] = event.ConsumerFunc(func(_ context.Context, b *event.Batch) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, e := range b.Events {
				raw := append([]byte(nil), e.Record...)
				js, _, _, err := msgpack.AppendJSON(nil, raw, 64)
				if err != nil {
					return err
				}
				var rec map[string]any
				if err := json.Unmarshal(js, &rec); err != nil {
					return err
				}
				c.got = append(c.got, routed{output: name, tag: b.Tag, time: e.Time, raw: raw, rec: rec})
			}
			return nil
		})
	}
	return out
}

func (c *collector) take() []routed {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.got
	c.got = nil
	return g
}

func newRouter(t *testing.T, cfg *config.Config, c *collector, hostname string) *router.Router {
	t.Helper()
	r, err := router.New(router.Options{Config: cfg, Outputs: c.consumers(cfg), Hostname: hostname,
		Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// dockerRecord is what Docker's fluentd log driver sends for one line.
func dockerRecord(container, line string) []byte {
	b := msgpack.AppendMapHeader(nil, 4)
	for _, kv := range [][2]string{
		{"container_id", strings.Repeat("0123abcd", 8)},
		{"container_name", "/" + container},
		{"source", "stdout"},
		{"log", line},
	} {
		b = msgpack.AppendString(b, kv[0])
		b = msgpack.AppendString(b, kv[1])
	}
	return b
}

// sampleLines are log lines of the containers in ecs/app-task.json, by the
// tag their fluentd log driver sends.
var sampleLines = map[string][]string{
	"docker.shop": {
		`{"log_type":"EVENT","event_type":"purchase","user_id":"u-1","item_id":"i-9","quantity":2,"amount":19.5,"currency":"JPY"}`,
		`{"level":"info","msg":"listening on :8080"}`,
		`{"log_type":"EVENT","user_id":"u-2"}`,
		`panic: runtime error: index out of range`,
	},
	"docker.nginx": {
		`10.0.1.7 - - [22/Nov/2026:13:04:05 +0000] "GET /api/items?page=2 HTTP/1.1" 200 512 "-" "curl/8.5.0"`,
		`10.0.1.8 - - [22/Nov/2026:13:04:06 +0000] "GET /healthz HTTP/1.1" 200 2 "-" "ELB-HealthChecker/2.0"`,
		`2026/11/22 13:04:07 [error] 29#29: *1 connect() failed (111: Connection refused) while connecting to upstream`,
	},
}

// TestRoutingAgentToAggregator sends Docker-shaped records through the
// agent's pipeline and then, as the forward output would, through the
// aggregator's, and checks where each line lands: the behaviour the
// comments of agent.yaml and aggregator.yaml promise.
func TestRoutingAgentToAggregator(t *testing.T) {
	s := loadECS(t)
	agentOut, aggOut := &collector{}, &collector{}
	agent := newRouter(t, s.agent.cfg, agentOut, "ip-10-0-1-23.ec2.internal")
	agg := newRouter(t, s.aggregator.cfg, aggOut, "aggregator-1")
	ctx := context.Background()

	// Every tag the application task definition logs with has samples.
	app := readTaskDef(t, "ecs/app-task.json")
	for _, c := range app.ContainerDefinitions {
		if tag := c.LogConfiguration.Options["tag"]; len(sampleLines[tag]) == 0 {
			t.Errorf("ecs/app-task.json logs with tag %q: add sample lines for it to this test", tag)
		}
	}

	now := event.Now()
	tags := make([]string, 0, len(sampleLines))
	for tag := range sampleLines {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	for _, tag := range tags {
		b := &event.Batch{Tag: tag}
		for i, line := range sampleLines[tag] {
			b.Events = append(b.Events, event.Event{Time: now + event.Time(i), Record: dockerRecord(strings.TrimPrefix(tag, "docker."), line)})
		}
		if err := agent.Consume(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	fromAgent := agentOut.take()
	if len(fromAgent) != 7 {
		t.Fatalf("the agent passed on %d of 7 events", len(fromAgent))
	}
	for _, e := range fromAgent {
		if e.output != "aggregators" {
			t.Errorf("agent: %s went to %s, want the forward output", e.tag, e.output)
		}
		if e.rec["host"] != "ip-10-0-1-23.ec2.internal" {
			t.Errorf("agent: host = %v, want the agent's host name", e.rec["host"])
		}
		if e.rec["container_name"] == nil {
			t.Errorf("agent: Docker's fields are gone: %v", e.rec)
		}
	}
	for _, e := range fromAgent {
		b := &event.Batch{Tag: e.tag, Events: []event.Event{{Time: e.time, Record: e.raw}}}
		if err := agg.Consume(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	got := aggOut.take()
	find := func(output, tag string, pred func(map[string]any) bool) *routed {
		for i := range got {
			if got[i].output == output && got[i].tag == tag && pred(got[i].rec) {
				return &got[i]
			}
		}
		t.Errorf("nothing reached output %s with tag %s; got:", output, tag)
		for _, g := range got {
			t.Logf("  %s %s %v", g.output, g.tag, g.rec)
		}
		return nil
	}
	has := func(k string, v any) func(map[string]any) bool {
		return func(r map[string]any) bool { return r[k] == v }
	}

	// A shop event: split by event type, its routing fields dropped, the
	// parsed fields kept.
	if e := find("shop_events", "shop.event.purchase", has("user_id", "u-1")); e != nil {
		for _, k := range []string{"log", "log_type", "event_type"} {
			if _, ok := e.rec[k]; ok {
				t.Errorf("shop event still has %s: %v", k, e.rec)
			}
		}
		if e.rec["amount"] != 19.5 || e.rec["quantity"] != float64(2) {
			t.Errorf("shop event fields: %v", e.rec)
		}
	}
	// Other shop lines (plain JSON, an event without a type, not JSON at
	// all) land in app_logs under their tag.
	find("app_logs", "docker.shop", has("msg", "listening on :8080"))
	find("app_logs", "shop.event", has("user_id", "u-2"))
	find("app_logs", "docker.shop", has("log", "panic: runtime error: index out of range"))
	// nginx: access lines parsed (time from the line, code an integer),
	// health checks dropped, other lines to the error route.
	if e := find("app_logs", "docker.nginx", has("path", "/api/items?page=2")); e != nil {
		if e.rec["code"] != float64(200) || e.rec["method"] != "GET" || e.rec["log"] != nil {
			t.Errorf("nginx access line: %v", e.rec)
		}
		if want := time.Date(2026, 11, 22, 13, 4, 5, 0, time.UTC); !e.time.Std().Equal(want) {
			t.Errorf("nginx access line time %v, want %v", e.time.Std(), want)
		}
	}
	if e := find("errors", "maruta.error.docker.nginx", func(r map[string]any) bool {
		s, _ := r["log"].(string)
		return strings.Contains(s, "[error]")
	}); e != nil && e.rec["container_name"] != "/nginx" {
		t.Errorf("error route record: %v", e.rec)
	}
	for _, g := range got {
		if g.rec["path"] == "/healthz" {
			t.Errorf("a health check line reached %s", g.output)
		}
	}
	if len(got) != 6 {
		t.Errorf("the aggregator delivered %d events, want 6 (7 minus one health check)", len(got))
	}
}
