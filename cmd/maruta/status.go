package main

import (
	"fmt"
	"sort"
	"time"

	"github.com/marutalog/maruta/buffer"
)

// appStatus is what /api/status and /readyz return.
type appStatus struct {
	Ready   bool           `json:"ready"`
	Reasons []string       `json:"reasons,omitempty"`
	Node    string         `json:"node"`
	Version string         `json:"version"`
	Uptime  string         `json:"uptime"`
	Outputs []outputStatus `json:"outputs"`
}

type outputStatus struct {
	buffer.Status
	// OldestEventAgeSeconds is how long the oldest undelivered event waits.
	OldestEventAgeSeconds float64 `json:"oldest_event_age_seconds"`
}

var startTime = time.Now()

// status reports every buffered output and whether maruta is ready: not
// ready when an output holds data and has delivered nothing for
// http.ready_stall_after, or its buffer is above http.ready_high_water
// percent of total_limit_size.
func (a *app) status() appStatus {
	now := time.Now()
	a.mu.Lock() // before a.cfg: a reload replaces it
	defer a.mu.Unlock()
	st := appStatus{Ready: true, Node: a.cfg.Node, Version: version, Uptime: now.Sub(startTime).Round(time.Second).String()}
	stall := a.cfg.HTTP.ReadyStallAfter.D()
	names := make([]string, 0, len(a.outputs))
	for n, or := range a.outputs {
		if or.buf != nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		s := a.outputs[n].buf.Status()
		os := outputStatus{Status: s}
		if !s.OldestEvent.IsZero() {
			os.OldestEventAgeSeconds = now.Sub(s.OldestEvent).Seconds()
		}
		st.Outputs = append(st.Outputs, os)
		if s.QueuedChunks > 0 {
			since := s.LastSuccess
			if since.Before(startTime) {
				since = startTime
			}
			if now.Sub(since) > stall {
				st.Ready = false
				st.Reasons = append(st.Reasons, fmt.Sprintf("output %s: %d chunks waiting, nothing delivered for %s (last error: %s)",
					s.Output, s.QueuedChunks, now.Sub(since).Round(time.Second), s.LastError))
			}
		}
		if s.TotalLimitBytes > 0 && s.TotalBytes*100 > s.TotalLimitBytes*int64(a.cfg.HTTP.ReadyHighWater) {
			st.Ready = false
			st.Reasons = append(st.Reasons, fmt.Sprintf("output %s: buffer %d%% full (high water %d%%)",
				s.Output, s.TotalBytes*100/s.TotalLimitBytes, a.cfg.HTTP.ReadyHighWater))
		}
	}
	return st
}
