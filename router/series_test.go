package router

import (
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
)

// TestOnlySeriesThatCanMove: a step exports the series it can move and no
// others, so a dashboard shows no counters that are zero by construction
// (a concat step's parse failures, a reserve_data step's key_missing
// failures, a rewrite step that keeps unmatched events' drop counter).
func TestOnlySeriesThatCanMove(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`
sources: [{type: forward}]
pipeline:
  - {type: concat_partials, name: concat}
  - {type: parse, name: keep, key: log, format: json, reserve_data: true}
  - {type: parse, name: strict, key: msg, format: json, time_key: t}
  - {type: parse, name: quiet, key: msg, format: json, emit_invalid_record_to_error: false}
  - {type: grep, name: grep, exclude: [{key: level, pattern: debug}]}
  - {type: rewrite_tag, name: rewrite, rules: [{key: k, pattern: x, tag: y}]}
outputs: [{type: stdout, name: out}]
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Config: cfg, Registerer: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		name := strings.TrimPrefix(mf.GetName(), "maruta_router_")
		if name == "step_events_in_total" || name == "step_events_out_total" {
			continue // every step
		}
		for _, m := range mf.GetMetric() {
			var l []string
			for _, lp := range m.GetLabel() {
				l = append(l, lp.GetValue())
			}
			got = append(got, name+"{"+strings.Join(l, ",")+"}")
		}
	}
	slices.Sort(got)
	// Labels in name order: dropped (reason, step), parse_failures (outcome,
	// reason, step), parse_kept and rewrite_unmatched (…, step).
	want := []string{
		"dropped_events_total{grep,grep}",
		"dropped_events_total{unroutable,}",
		"error_route_events_total{keep}",
		"error_route_events_total{strict}",
		"events_in_total{}",
		"loop_cuts_total{rewrite}",
		"output_errors_total{out}",
		"output_events_total{out}",
		"parse_failures_total{dropped,invalid,quiet}",
		"parse_failures_total{dropped,key_missing,quiet}",
		"parse_failures_total{dropped,not_string,quiet}",
		"parse_failures_total{error_route,invalid,strict}",
		"parse_failures_total{error_route,key_missing,strict}",
		"parse_failures_total{error_route,not_string,keep}",
		"parse_failures_total{error_route,not_string,strict}",
		"parse_failures_total{error_route,time,strict}",
		"parse_kept_total{invalid,keep}",
		"parse_kept_total{key_missing,keep}",
		"partial_fragments_total{concat}",
		"partials_assembled_total{concat}",
		"partials_evicted_total{concat}",
		"partials_pending_bytes{concat}",
		"partials_pending{concat}",
		"partials_split_total{concat}",
		"partials_timed_out_total{concat}",
		"rewrite_unmatched_total{keep,rewrite}",
		"rewrites_total{rewrite}",
		"tag_cache_resets_total{}",
		"unroutable_events_total{}",
	}
	if !slices.Equal(got, want) {
		t.Errorf("series:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
