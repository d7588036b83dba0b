// Package router runs maruta's pipeline: it takes batches from the Forward
// server, applies the pipeline steps in order, picks each event's output,
// and hands the resulting batches to the outputs synchronously.
//
// # Semantics (fluentd's)
//
// Tag patterns are fluentd's (see Pattern). Steps run in config order for
// events whose tag matches the step's match (and not its exclude_tags). A
// rewrite_tag step that re-tags an event restarts the pipeline from the first
// step with the new tag, as fluentd re-emits it into its router; a hop limit
// (max_hops) cuts loops. Events that no rule re-tags continue with their tag
// (unmatched: keep, maruta's default) or are dropped (unmatched: drop,
// fluentd's behaviour, which the fluent.conf importer sets); a rule whose new
// tag equals the old one counts as not matching, as in the plugin.
//
// The output is the first one in config order whose match matches the tag; a
// copy output hands the events to each of its stores. An event no output
// matches is unroutable: counted and logged (rate-limited), then dropped.
//
// # Error route
//
// fluentd sends records its parser filter cannot parse to the @ERROR label.
// maruta's equivalent: the record, unchanged, is re-tagged
// "maruta.error.<original tag>" (ErrorTagPrefix) and goes straight to output
// selection, skipping the remaining steps. An output with match
// "maruta.error.**" placed before the catch-all outputs receives them; without
// one they land wherever their tag matches (the default lake keeps them under
// their own tag), or are counted as unroutable. With reserve_data the
// original record passes on instead and only the failure is counted (fluentd
// would also emit a copy to @ERROR). The fluent.conf importer maps
// <label @ERROR> to outputs matching maruta.error.**, and without one adds a
// null output for them, which is what fluentd does (log and drop).
//
// # Hot path
//
// Records stay raw msgpack. Steps that only read a key scan the record;
// steps that change it re-encode it once into a per-call arena that lives
// until Consume returns. Match results are cached per tag (a bounded cache),
// and output events are grouped per (output, tag) into one batch each.
//
// # Durability of partial lines
//
// concat_partials holds fragments of Docker's split lines in memory until the
// line is complete, its timeout passes, or Drain runs. The Forward server
// acknowledges a request once Consume returns, so held fragments are
// acknowledged upstream before they reach a buffer: a crash (kill -9, power
// loss) loses the fragments held at that moment — at most max_pending lines,
// each at most max_size bytes, none older than timeout. A clean shutdown
// (Drain) writes them out. Counted: maruta_router_partials_pending and
// maruta_router_partials_pending_bytes.
//
// # Lifecycle and imports
//
// New compiles the pipeline and the outputs (config errors name file, line
// and key) → Run passes on partial lines whose timeout expired, until its
// context is done → Drain passes on every partial line still held (after
// the sources stopped, before the outputs close) → Close ends Run
// (lifecycle.Component). Consume is safe for concurrent use: each call takes
// its own state.
//
// Imports: internal/… only (arena, config, dedup, event, lifecycle, msgpack,
// ruby).
// Outputs are event.Consumers handed in by cmd/maruta, so the router never
// imports buffer, sinks or forward. fluentd's Ruby semantics (regexps,
// strptime, to_s) live in internal/ruby.
package router
