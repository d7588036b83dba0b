package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/event"
)

// errSwapped is returned to a request that raced a reload and reached a
// component that was being stopped: the request is not acked, so the client
// sends it again and the new pipeline takes it.
var errSwapped = errors.New("pipeline is being reloaded; retry")

// tracked counts the Consume calls in flight on one consumer, so a reload can
// wait for them before stopping it.
type tracked struct {
	c        event.Consumer
	inflight atomic.Int64
	retired  atomic.Bool   // set by waitIdle: the last call to leave signals idle
	idleOnce sync.Once     // idle is closed once
	idle     chan struct{} // closed when no call is in flight after retirement
}

func newTracked(c event.Consumer) *tracked {
	return &tracked{c: c, idle: make(chan struct{})}
}

func (t *tracked) enter() { t.inflight.Add(1) }

// leave ends one call; the last one out of a retired target wakes waitIdle.
func (t *tracked) leave() {
	if t.inflight.Add(-1) == 0 && t.retired.Load() {
		t.idleOnce.Do(func() { close(t.idle) })
	}
}

// waitIdle marks t retired (swapped out) and waits until no call is in
// flight or the timeout passes. Either the last leave sees retired set, or
// waitIdle sees the count at zero after setting it: no wake-up is missed.
// A nil t (a switch that had no target) is idle.
func (t *tracked) waitIdle(timeout time.Duration) bool {
	if t == nil {
		return true
	}
	t.retired.Store(true)
	if t.inflight.Load() == 0 {
		return true
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.idle:
		return true
	case <-timer.C:
		return false
	}
}

// switchConsumer is a Consumer whose target a reload replaces atomically.
// Sources hold the front switch (its target is the router); the router
// holds one switch per output name (its target is that output's buffer).
type switchConsumer struct {
	cur atomic.Pointer[tracked]
}

func newSwitch(c event.Consumer) *switchConsumer {
	s := &switchConsumer{}
	if c != nil {
		s.cur.Store(newTracked(c))
	}
	return s
}

// Consume passes b to the current target.
func (s *switchConsumer) Consume(ctx context.Context, b *event.Batch) error {
	t := s.cur.Load()
	if t == nil {
		return errSwapped
	}
	t.enter()
	defer t.leave()
	return t.c.Consume(ctx, b)
}

// swap installs c and returns the previous target, whose in-flight calls
// the caller may wait for.
func (s *switchConsumer) swap(c event.Consumer) *tracked {
	var n *tracked
	if c != nil {
		n = newTracked(c)
	}
	return s.cur.Swap(n)
}

// replacingRegisterer registers collectors and, when one with the same
// descriptors is already registered (a component rebuilt by a reload),
// replaces it. Counters of a rebuilt component restart from zero, which
// Prometheus handles as a counter reset.
type replacingRegisterer struct{ *prometheus.Registry }

func (r replacingRegisterer) Register(c prometheus.Collector) error {
	err := r.Registry.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		r.Registry.Unregister(are.ExistingCollector)
		return r.Registry.Register(c)
	}
	return err
}

func (r replacingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}
