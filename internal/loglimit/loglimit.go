// Package loglimit rate-limits log lines that a client or a stream of bad
// events could repeat without end (a refused handshake, a record that does
// not parse, an event sent to the error route), so that they cannot flood
// the log. It limits log lines only: the caller counts every occurrence in
// its metrics whether or not the line is logged.
//
// Semantics, the same for Limiter and for each key of Keyed: the first
// occurrence is logged; after a logged line, the occurrences within the
// next interval are not logged but counted; the first occurrence after the
// interval is logged again and carries that count (the "suppressed"
// attribute), which then starts again from zero. A line that is held back
// is never logged later: an occurrence that ends a quiet period is logged
// at once, and its suppressed count says what came before it.
//
// Both types are safe for concurrent use; Limiter.Allow takes no lock.
package loglimit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Limiter lets one log line through per interval and counts the rest.
type Limiter struct {
	every      time.Duration
	next       atomic.Int64 // unix nanoseconds before which lines are held back
	suppressed atomic.Int64
}

// New returns a Limiter that logs at most one line per every.
func New(every time.Duration) *Limiter { return &Limiter{every: every} }

// Allow reports whether to log the occurrence now and, when it does, how
// many occurrences were held back since the last logged line.
func (l *Limiter) Allow() (ok bool, suppressed int64) {
	now := time.Now().UnixNano()
	n := l.next.Load()
	if now < n || !l.next.CompareAndSwap(n, now+int64(l.every)) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}

// Warn logs msg at warn level when Allow lets it through, with a
// "suppressed" attribute when occurrences were held back before it.
func (l *Limiter) Warn(log *slog.Logger, msg string, args ...any) {
	l.log(log, slog.LevelWarn, msg, args)
}

// Debug is Warn at debug level. When the logger does not log debug lines
// the occurrence is neither logged nor counted, so that it does not hold
// back a line of its own.
func (l *Limiter) Debug(log *slog.Logger, msg string, args ...any) {
	l.log(log, slog.LevelDebug, msg, args)
}

func (l *Limiter) log(log *slog.Logger, level slog.Level, msg string, args []any) {
	if !log.Enabled(context.Background(), level) {
		return
	}
	ok, sup := l.Allow()
	if !ok {
		return
	}
	if sup > 0 {
		args = append(args, "suppressed", sup)
	}
	log.Log(context.Background(), level, msg, args...)
}

// maxKeys bounds the keys Keyed remembers. The callers' keys are a fixed
// set (reasons); past the bound every key starts afresh, so an unforeseen
// source of keys costs log lines, never memory.
const maxKeys = 1000

// Keyed is a Limiter per key: a burst of one kind of line does not hold
// back the first line of another.
type Keyed struct {
	every time.Duration
	mu    sync.Mutex
	keys  map[string]*Limiter
}

// NewKeyed returns a Keyed whose limiters let one line through per every.
func NewKeyed(every time.Duration) *Keyed {
	return &Keyed{every: every, keys: map[string]*Limiter{}}
}

// Allow is Limiter.Allow for key.
func (k *Keyed) Allow(key string) (ok bool, suppressed int64) {
	k.mu.Lock()
	l := k.keys[key]
	if l == nil {
		if len(k.keys) >= maxKeys {
			clear(k.keys)
		}
		l = New(k.every)
		k.keys[key] = l
	}
	k.mu.Unlock()
	return l.Allow()
}
