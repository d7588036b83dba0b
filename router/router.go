package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/dedup"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/lifecycle"
	"github.com/marutalog/maruta/internal/loglimit"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrorTagPrefix starts the tag of every event on the error route (see the
// package documentation).
const ErrorTagPrefix = "maruta.error."

// ErrCheckMode is returned by Consume on a router built without outputs.
var ErrCheckMode = errors.New("router: built in check mode (no outputs); it routes nothing")

// Options configures a Router.
type Options struct {
	// Config supplies Pipeline and Outputs, with defaults applied.
	Config *config.Config
	// Outputs are the leaf outputs by name (config.LeafOutputs). nil builds
	// the router in check mode: everything is compiled, nothing is routed
	// (for `maruta validate`).
	Outputs map[string]event.Consumer
	// Hostname expands ${hostname}. Default: os.Hostname.
	Hostname string
	Logger   *slog.Logger
	// Registerer receives the maruta_router_* metrics. nil: not registered.
	Registerer prometheus.Registerer
}

// Router runs the pipeline steps and routes events to outputs.
//
// Lifecycle: New, then Consume from any number of goroutines while Run runs
// (Run is needed only for concat_partials timeouts). After the sources have
// stopped, Drain passes on held partial lines; then cancel Run's context
// (or Close: the router holds nothing New acquired, so Close only ends Run).
// Consume, Run, Drain and Close are safe for concurrent use.
type Router struct {
	log      *slog.Logger
	hostname string
	steps    []*stepRT
	outputs  []*outputRT
	check    bool
	m        *metrics
	plans    planCache
	states   sync.Pool
	concats  []*concatStep

	unroutableLog *loglimit.Limiter
	errorLog      *loglimit.Limiter
	debug         bool // debug logging on: log expected drops

	unroutableDropped prometheus.Counter

	closed    chan struct{} // closed by Close: Run returns
	closeOnce sync.Once
}

var _ event.Consumer = (*Router)(nil)
var _ lifecycle.Component = (*Router)(nil)

// stepRT is one compiled step.
type stepRT struct {
	name       string
	idx        int
	match      *Pattern
	exclude    *Pattern
	impl       stepImpl
	counters   [nCounters]prometheus.Counter
	errorRoute prometheus.Counter
	dropLog    *loglimit.Limiter // unexpected drops (warn)
	// expectLog is for drops the config asks for (unmatched: drop, grep):
	// logged at debug level.
	expectLog *loglimit.Limiter
}

type verdict uint8

const (
	vPass  verdict = iota // continue with the next step
	vDrop                 // the event is gone (counted by the step)
	vRetag                // restart the pipeline with a new tag
	vError                // send to the error route
	vHold                 // the step kept the event (concat_partials)
)

// stepImpl is a step's behaviour. apply may change ev (time, record; a new
// record must live in st's arena). For vRetag it returns the new tag.
type stepImpl interface {
	apply(r *Router, st *state, s *stepRT, p *plan, ev *event.Event, hops int) (verdict, string)
}

// outputRT is one top-level output: a leaf, or a copy with its stores.
type outputRT struct {
	name      string
	match     *Pattern
	consumers []outConsumer
}

type outConsumer struct {
	name     string
	c        event.Consumer
	buffered bool // stores events durably (a marked batch's hand-over counts)
	events   prometheus.Counter
	errors   prometheus.Counter
}

// New compiles the pipeline and outputs. Config problems (a bad tag pattern,
// a regexp RE2 cannot express, …) are returned as config.Errors naming the
// file, line and key of each.
func New(opts Options) (*Router, error) {
	if opts.Config == nil {
		return nil, errors.New("router: Options.Config is nil")
	}
	cfg := opts.Config
	r := &Router{
		log:      opts.Logger,
		hostname: opts.Hostname,
		check:    opts.Outputs == nil,
		closed:   make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.log = r.log.With("component", "router")
	r.debug = r.log.Enabled(context.Background(), slog.LevelDebug)
	if r.hostname == "" {
		r.hostname, _ = os.Hostname()
	}
	r.unroutableLog = loglimit.New(10 * time.Second)
	r.errorLog = loglimit.New(10 * time.Second)
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register router metrics: %w", err)
	}
	r.m = m
	r.unroutableDropped = m.dropped.WithLabelValues("", "unroutable")
	// Config errors are collected, so one run reports all of them.
	var errs config.Errors
	for i := range cfg.Pipeline {
		s, err := r.compileStep(cfg, i)
		if err != nil {
			es := config.AsErrors(err)
			if es == nil {
				return nil, err
			}
			errs = append(errs, es...)
			continue
		}
		r.steps = append(r.steps, s)
	}
	for i := range cfg.Outputs {
		o := &cfg.Outputs[i]
		path := fmt.Sprintf("outputs[%d]", i)
		pat, err := CompilePattern(o.Match)
		if err != nil {
			errs = append(errs, cfg.Errorf(path+".match", "%v", err))
			continue
		}
		ort := &outputRT{name: o.Name, match: pat}
		leaves := []*config.Output{o}
		if o.Copy != nil {
			leaves = nil
			for j := range o.Copy.Stores {
				leaves = append(leaves, &o.Copy.Stores[j])
			}
		}
		for _, leaf := range leaves {
			oc := outConsumer{name: leaf.Name, buffered: leaf.BufferConfig() != nil,
				events: r.m.outputEvents.WithLabelValues(leaf.Name),
				errors: r.m.outputErrors.WithLabelValues(leaf.Name)}
			if !r.check {
				c, ok := opts.Outputs[leaf.Name]
				if !ok || c == nil {
					return nil, fmt.Errorf("router: no consumer for output %q", leaf.Name)
				}
				oc.c = c
			}
			ort.consumers = append(ort.consumers, oc)
		}
		r.outputs = append(r.outputs, ort)
	}
	if errs != nil {
		return nil, errs
	}
	r.plans.init(r)
	r.states.New = func() any { return newState(len(r.steps)) }
	return r, nil
}

// stepBuilders is the table of pipeline step types: how each builds its
// step from its config (internal/config's stepKinds has the config side).
var stepBuilders = map[string]func(r *Router, cfg *config.Config, path string, st *config.Step, s *stepRT) (stepImpl, error){
	"parse": func(_ *Router, cfg *config.Config, path string, st *config.Step, _ *stepRT) (stepImpl, error) {
		return newParseStep(cfg, path, st.Parse)
	},
	"rewrite_tag": func(r *Router, cfg *config.Config, path string, st *config.Step, _ *stepRT) (stepImpl, error) {
		return newRewriteStep(cfg, path, st.RewriteTag, r.hostname)
	},
	"concat_partials": func(r *Router, _ *config.Config, _ string, st *config.Step, s *stepRT) (stepImpl, error) {
		c := newConcatStep(st.ConcatPartials, s, r.log)
		c.pending = r.m.partialsPending.WithLabelValues(st.Name)
		c.pendingBytes = r.m.partialsBytes.WithLabelValues(st.Name)
		c.timedOut = r.m.partialsTimedOut.WithLabelValues(st.Name)
		r.concats = append(r.concats, c)
		return c, nil
	},
	"record": func(_ *Router, cfg *config.Config, path string, st *config.Step, _ *stepRT) (stepImpl, error) {
		return newRecordStep(cfg, path, st.Record)
	},
	"grep": func(_ *Router, cfg *config.Config, path string, st *config.Step, _ *stepRT) (stepImpl, error) {
		return newGrepStep(cfg, path, st.Grep)
	},
}

func (r *Router) compileStep(cfg *config.Config, i int) (*stepRT, error) {
	st := &cfg.Pipeline[i]
	path := fmt.Sprintf("pipeline[%d]", i)
	s := &stepRT{name: st.Name, idx: i}
	s.dropLog = loglimit.New(10 * time.Second)
	s.expectLog = loglimit.New(10 * time.Second)
	var errs config.Errors
	var err error
	if s.match, err = CompilePattern(st.Match); err != nil {
		errs = append(errs, cfg.Errorf(path+".match", "%v", err))
	}
	if st.Exclude != "" {
		if s.exclude, err = CompilePattern(st.Exclude); err != nil {
			errs = append(errs, cfg.Errorf(path+".exclude_tags", "%v", err))
		}
	}
	if build, ok := stepBuilders[st.Type]; ok {
		s.impl, err = build(r, cfg, path, st, s)
	} else {
		err = cfg.Errorf(path, "unknown step type %q", st.Type)
	}
	if err != nil {
		es := config.AsErrors(err)
		if es == nil {
			return nil, err
		}
		errs = append(errs, es...)
	}
	if errs != nil {
		return nil, errs
	}
	s.counters = r.m.stepCounters(st)
	s.errorRoute = noCounter
	// The only step that sends to the error route, unless told to drop.
	if p := st.Parse; p != nil && (p.EmitInvalidRecordToError == nil || *p.EmitInvalidRecordToError) {
		s.errorRoute = r.m.errorRoute.WithLabelValues(st.Name)
	}
	return s, nil
}

// Consume runs the pipeline on every event of b and hands the results to the
// outputs before it returns, with b.Commit (so the outputs' pending writes
// are collected there; see event.Batch). It returns the first output error
// (the caller then does not acknowledge b). Consume keeps no reference to b.
func (r *Router) Consume(ctx context.Context, b *event.Batch) error {
	if r.check {
		return ErrCheckMode
	}
	st := r.getState()
	defer r.putState(st)
	r.m.eventsIn.Add(float64(len(b.Events)))
	for _, ev := range b.Events {
		r.run(st, b.Tag, ev, 0, 0)
	}
	return r.deliver(ctx, st, b.Commit, b.Dedup)
}

// Run does the router's background work — passing on Docker split lines
// whose timeout expired — until ctx is done or Close is called. It returns
// nil then.
func (r *Router) Run(ctx context.Context) error {
	if len(r.concats) == 0 || r.check {
		select {
		case <-ctx.Done():
		case <-r.closed:
		}
		return nil
	}
	tick := time.Second
	for _, c := range r.concats {
		if d := c.timeout / 4; d < tick {
			tick = d
		}
	}
	if tick < 10*time.Millisecond {
		tick = 10 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.closed:
			return nil
		case now := <-t.C:
			if err := r.flushPartials(ctx, now, false); err != nil && ctx.Err() == nil {
				r.log.Error("pass on timed-out partial lines", "error", err)
			}
		}
	}
}

// Drain passes on every partial line still held, complete or not. Call it
// after the sources have stopped and before the outputs close.
func (r *Router) Drain(ctx context.Context) error {
	if r.check {
		return nil
	}
	return r.flushPartials(ctx, time.Now(), true)
}

// Close ends Run. Partial lines still held are not passed on (Drain does
// that). Safe to call more than once, before or after Run.
func (r *Router) Close() error {
	r.closeOnce.Do(func() { close(r.closed) })
	return nil
}

func (r *Router) flushPartials(ctx context.Context, now time.Time, all bool) error {
	var errs []error
	for _, c := range r.concats {
		st := r.getState()
		n := c.expire(r, st, now, all)
		if n > 0 {
			if err := r.deliver(ctx, st, nil, nil); err != nil {
				c.s.dropLog.Warn(r.log, "dropped timed-out partial lines: an output refused them", "step", c.s.name, "events", n, "error", err)
				r.m.dropped.WithLabelValues(c.s.name, "flush_failed").Add(float64(n))
				errs = append(errs, err)
			}
		}
		r.putState(st)
	}
	return errors.Join(errs...)
}

// run passes one event through the steps from index from, then to its
// output.
func (r *Router) run(st *state, tag string, ev event.Event, from, hops int) {
	// The event lives in a state slot: passing a local's address to the
	// steps (an interface call) would move it to the heap on every call.
	var evp *event.Event
	if st.depth < len(st.slots) {
		evp = &st.slots[st.depth]
	} else {
		evp = new(event.Event)
	}
	st.depth++
	defer func() { st.depth-- }()
	*evp = ev
	p := r.plans.get(st, tag)
	for i := from; i < len(r.steps); i++ {
		if !p.steps[i] {
			continue
		}
		s := r.steps[i]
		st.count(i, cIn)
		v, newTag := s.impl.apply(r, st, s, p, evp, hops)
		switch v {
		case vPass:
			st.count(i, cOut)
		case vDrop, vHold:
			return
		case vRetag:
			st.count(i, cOut)
			hops++
			p = r.plans.get(st, newTag)
			i = -1 // restart from the first step
		case vError:
			s.errorRoute.Inc()
			if ok, sup := r.errorLog.Allow(); ok {
				r.log.Warn("record sent to the error route", "step", s.name, "tag", p.tag, "error_tag", ErrorTagPrefix+p.tag, "suppressed", sup)
			}
			p = r.plans.get(st, ErrorTagPrefix+p.tag)
			r.emit(st, p, *evp)
			return
		}
	}
	r.emit(st, p, *evp)
}

func (r *Router) emit(st *state, p *plan, ev event.Event) {
	if p.out < 0 {
		r.m.unroutable.Inc()
		r.unroutableDropped.Inc()
		if ok, sup := r.unroutableLog.Allow(); ok {
			r.log.Warn("no output matches the tag; event dropped", "tag", p.tag, "suppressed", sup)
		}
		return
	}
	st.add(p.out, p.tag, ev)
}

// deliver hands the grouped events to the outputs, stopping at the first
// error (a copy is all-or-nothing: the error is returned even when other
// stores took the batch). commit (may be nil) collects the outputs' pending
// writes. mark (may be nil) goes with every hand-over; those to buffered
// outputs are numbered, so that a restart can tell whether all of them
// were stored (buffer/FORMAT.md, "Dedup marks").
func (r *Router) deliver(ctx context.Context, st *state, commit *event.Commit, mark *dedup.Mark) error {
	st.flushCounters(r)
	parts, part := 0, 0
	if mark != nil {
		for gi := range st.groups {
			if g := &st.groups[gi]; len(g.events) > 0 {
				for _, c := range r.outputs[g.out].consumers {
					if c.buffered {
						parts++
					}
				}
			}
		}
	}
	for gi := range st.groups {
		g := &st.groups[gi]
		if len(g.events) == 0 {
			continue
		}
		o := r.outputs[g.out]
		b := event.Batch{Tag: g.tag, Events: g.events, Commit: commit, Dedup: mark}
		for _, c := range o.consumers {
			b.Delivery, b.Deliveries = 0, 0
			if mark != nil && c.buffered {
				part++
				b.Delivery, b.Deliveries = part, parts
			}
			if err := c.c.Consume(ctx, &b); err != nil {
				c.errors.Inc()
				return fmt.Errorf("output %s: %w", c.name, err)
			}
			c.events.Add(float64(len(b.Events)))
		}
	}
	return nil
}

// plan is what the router knows about one tag: which steps match, which
// output takes it, and its parts for placeholders.
type plan struct {
	tag   string
	steps []bool
	out   int
	tc    tagContext
	// prefixed holds, per rewrite step with remove_tag_prefix, the tag
	// context after the prefix is removed.
	prefixed []*tagContext
}

// planCache maps tags to plans. It is bounded: when full it is cleared.
type planCache struct {
	r   *Router
	mu  sync.RWMutex
	m   map[string]*plan
	max int
}

const maxCachedTags = 8192

func (c *planCache) init(r *Router) {
	c.r = r
	c.m = make(map[string]*plan)
	c.max = maxCachedTags
}

// get returns the plan for tag, using the call state's last plan first.
func (c *planCache) get(st *state, tag string) *plan {
	if st.last != nil && st.last.tag == tag {
		return st.last
	}
	c.mu.RLock()
	p := c.m[tag]
	c.mu.RUnlock()
	if p == nil {
		p = c.r.newPlan(tag)
		c.mu.Lock()
		if len(c.m) >= c.max {
			c.m = make(map[string]*plan)
			c.r.m.cacheResets.Inc()
		}
		c.m[tag] = p
		c.mu.Unlock()
	}
	st.last = p
	return p
}

// getBytes is get for a tag built in a scratch buffer: a cached tag is
// found without allocating a string.
func (c *planCache) getBytes(st *state, tag []byte) *plan {
	if st.last != nil && st.last.tag == string(tag) {
		return st.last
	}
	c.mu.RLock()
	p := c.m[string(tag)]
	c.mu.RUnlock()
	if p != nil {
		st.last = p
		return p
	}
	return c.get(st, string(tag))
}

func (r *Router) newPlan(tag string) *plan {
	p := &plan{tag: tag, steps: make([]bool, len(r.steps)), out: -1, tc: newTagContext(tag, r.hostname)}
	for i, s := range r.steps {
		p.steps[i] = s.match.Match(tag) && (s.exclude == nil || !s.exclude.Match(tag))
		if rw, ok := s.impl.(*rewriteStep); ok && rw.removePrefix != "" {
			if p.prefixed == nil {
				p.prefixed = make([]*tagContext, len(r.steps))
			}
			t := tag
			if strings.HasPrefix(t, rw.removePrefix) {
				t = strings.TrimPrefix(t[len(rw.removePrefix):], ".")
			}
			tc := newTagContext(t, rw.hostname)
			p.prefixed[i] = &tc
		}
	}
	for i, o := range r.outputs {
		if o.match.Match(tag) {
			p.out = i
			break
		}
	}
	return p
}

// Match reports the output the router would choose for tag ("" when none),
// for tests and `maruta validate`-style tooling.
func (r *Router) Match(tag string) string {
	p := r.newPlan(tag)
	if p.out < 0 {
		return ""
	}
	return r.outputs[p.out].name
}
