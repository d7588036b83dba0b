package router

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
)

// Per-step counters are accumulated per Consume call in the call's state and
// added to Prometheus once per call, so the hot path does no atomic
// operations per event.
const (
	cIn = iota
	cOut
	cRewrite
	cUnmatchedKeep
	cUnmatchedDrop
	cLoopCut
	cParseKeptKeyMissing
	cParseKeptInvalid
	cParseKeptTime
	cParseErrorKeyMissing
	cParseErrorNotString
	cParseErrorInvalid
	cParseErrorTime
	cParseDroppedKeyMissing
	cParseDroppedNotString
	cParseDroppedInvalid
	cParseDroppedTime
	cGrepDropped
	cFragments
	cAssembled
	cSplit
	cEvicted
	nCounters
)

type metrics struct {
	eventsIn          prometheus.Counter
	stepIn            *prometheus.CounterVec
	stepOut           *prometheus.CounterVec
	rewrites          *prometheus.CounterVec
	unmatched         *prometheus.CounterVec
	loopCuts          *prometheus.CounterVec
	parseFailures     *prometheus.CounterVec
	parseKept         *prometheus.CounterVec
	errorRoute        *prometheus.CounterVec
	partialFragments  *prometheus.CounterVec
	partialsAssembled *prometheus.CounterVec
	partialsTimedOut  *prometheus.CounterVec
	partialsSplit     *prometheus.CounterVec
	partialsEvicted   *prometheus.CounterVec
	partialsPending   *prometheus.GaugeVec
	partialsBytes     *prometheus.GaugeVec
	outputEvents      *prometheus.CounterVec
	outputErrors      *prometheus.CounterVec
	dropped           *prometheus.CounterVec
	unroutable        prometheus.Counter
	cacheResets       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "maruta_router_" + name, Help: help}, labels)
	}
	m := &metrics{
		eventsIn:          prometheus.NewCounter(prometheus.CounterOpts{Name: "maruta_router_events_in_total", Help: "Events handed to the router."}),
		stepIn:            cv("step_events_in_total", "Events a pipeline step processed.", "step"),
		stepOut:           cv("step_events_out_total", "Events a pipeline step passed on (re-tagged events included).", "step"),
		rewrites:          cv("rewrites_total", "Events a rewrite_tag step re-tagged.", "step"),
		unmatched:         cv("rewrite_unmatched_total", "Events no rewrite_tag rule re-tagged, by what happened to them (keep or drop).", "step", "action"),
		loopCuts:          cv("loop_cuts_total", "Events dropped because they were re-tagged more than max_hops times.", "step"),
		parseFailures:     cv("parse_failures_total", "Records a parse step could not parse, by reason (key_missing, not_string, invalid, time) and outcome (error_route; dropped).", "step", "reason", "outcome"),
		parseKept:         cv("parse_kept_total", "Records a parse step passed on as they were, not failures: reserve_data and the key missing (key_missing) or its text not JSON or not matching (invalid: a plain-text line stays in log), or time_type auto and a time field that is not a time (time: it stays as text).", "step", "reason"),
		errorRoute:        cv("error_route_events_total", "Events sent to the error route (re-tagged maruta.error.<tag>).", "step"),
		partialFragments:  cv("partial_fragments_total", "Docker partial-line fragments received.", "step"),
		partialsAssembled: cv("partials_assembled_total", "Docker split lines reassembled and passed on complete.", "step"),
		partialsTimedOut:  cv("partials_timed_out_total", "Unfinished Docker split lines passed on after the timeout (or at shutdown).", "step"),
		partialsSplit:     cv("partials_split_total", "Parts passed on because a line exceeded max_size.", "step"),
		partialsEvicted:   cv("partials_evicted_total", "Unfinished lines passed on early because max_pending lines were held.", "step"),
		partialsPending:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "maruta_router_partials_pending", Help: "Unfinished Docker split lines held in memory (acknowledged upstream, lost on a crash)."}, []string{"step"}),
		partialsBytes:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "maruta_router_partials_pending_bytes", Help: "Bytes of unfinished Docker split lines held in memory."}, []string{"step"}),
		outputEvents:      cv("output_events_total", "Events handed to an output (a leaf output or copy store).", "output"),
		outputErrors:      cv("output_errors_total", "Batches an output refused (the batch is not acknowledged upstream).", "output"),
		dropped:           cv("dropped_events_total", "Events the router dropped, by step and reason.", "step", "reason"),
		unroutable:        prometheus.NewCounter(prometheus.CounterOpts{Name: "maruta_router_unroutable_events_total", Help: "Events no output matched (dropped; also in dropped_events_total{reason=\"unroutable\"})."}),
		cacheResets:       prometheus.NewCounter(prometheus.CounterOpts{Name: "maruta_router_tag_cache_resets_total", Help: "Times the per-tag match cache was full and cleared."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.eventsIn, m.stepIn, m.stepOut, m.rewrites, m.unmatched, m.loopCuts,
		m.parseFailures, m.parseKept, m.errorRoute, m.partialFragments, m.partialsAssembled, m.partialsTimedOut, m.partialsSplit,
		m.partialsEvicted, m.partialsPending, m.partialsBytes, m.outputEvents, m.outputErrors, m.dropped, m.unroutable, m.cacheResets} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// noCounter stands in for a counter a step cannot move: only series that
// can move are exported (a concat step has no parse failures, a parse step
// with reserve_data no key_missing failure).
var noCounter = prometheus.NewCounter(prometheus.CounterOpts{Name: "maruta_router_unexported"})

// stepCounters resolves one step's counters once, indexed by the c*
// constants: those the step can move; the others count into noCounter.
func (m *metrics) stepCounters(st *config.Step) [nCounters]prometheus.Counter {
	var c [nCounters]prometheus.Counter
	for i := range c {
		c[i] = noCounter
	}
	step := st.Name
	c[cIn] = m.stepIn.WithLabelValues(step)
	c[cOut] = m.stepOut.WithLabelValues(step)
	switch {
	case st.RewriteTag != nil:
		c[cRewrite] = m.rewrites.WithLabelValues(step)
		if st.RewriteTag.Unmatched == config.UnmatchedDrop {
			c[cUnmatchedDrop] = m.unmatched.WithLabelValues(step, "drop")
		} else {
			c[cUnmatchedKeep] = m.unmatched.WithLabelValues(step, "keep")
		}
		c[cLoopCut] = m.loopCuts.WithLabelValues(step)
	case st.Parse != nil:
		p := st.Parse
		failed := func(reason string) prometheus.Counter {
			if p.EmitInvalidRecordToError != nil && !*p.EmitInvalidRecordToError {
				return m.parseFailures.WithLabelValues(step, reason, "dropped")
			}
			return m.parseFailures.WithLabelValues(step, reason, "error_route")
		}
		ifDrop := func(i int) int {
			if p.EmitInvalidRecordToError != nil && !*p.EmitInvalidRecordToError {
				return i + cParseDroppedKeyMissing - cParseErrorKeyMissing
			}
			return i
		}
		if p.ReserveData {
			c[cParseKeptKeyMissing] = m.parseKept.WithLabelValues(step, "key_missing")
			c[cParseKeptInvalid] = m.parseKept.WithLabelValues(step, "invalid")
		} else {
			c[ifDrop(cParseErrorKeyMissing)] = failed("key_missing")
			c[ifDrop(cParseErrorInvalid)] = failed("invalid")
		}
		c[ifDrop(cParseErrorNotString)] = failed("not_string")
		switch {
		case p.TimeKey != "" && p.TimeType == "auto":
			c[cParseKeptTime] = m.parseKept.WithLabelValues(step, "time")
		case p.TimeKey != "":
			c[ifDrop(cParseErrorTime)] = failed("time")
		}
	case st.Grep != nil:
		c[cGrepDropped] = m.dropped.WithLabelValues(step, "grep")
	case st.ConcatPartials != nil:
		c[cFragments] = m.partialFragments.WithLabelValues(step)
		c[cAssembled] = m.partialsAssembled.WithLabelValues(step)
		c[cSplit] = m.partialsSplit.WithLabelValues(step)
		c[cEvicted] = m.partialsEvicted.WithLabelValues(step)
	}
	return c
}
