package main

import (
	"context"
	"errors"
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
}

// waitIdle waits until no call is in flight or the timeout passes.
func (t *tracked) waitIdle(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for t.inflight.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
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
		s.cur.Store(&tracked{c: c})
	}
	return s
}

// Consume passes b to the current target.
func (s *switchConsumer) Consume(ctx context.Context, b *event.Batch) error {
	t := s.cur.Load()
	if t == nil {
		return errSwapped
	}
	t.inflight.Add(1)
	defer t.inflight.Add(-1)
	return t.c.Consume(ctx, b)
}

// swap installs c and returns the previous target, whose in-flight calls
// the caller may wait for.
func (s *switchConsumer) swap(c event.Consumer) *tracked {
	var n *tracked
	if c != nil {
		n = &tracked{c: c}
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
