package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sample is one reading of the target maruta's state. Counters are totals
// since maruta started; a field is -1 when the target did not report it.
type Sample struct {
	Time        time.Time
	Accepted    float64 // maruta_forward_events_total: events handed downstream and accepted
	Delivered   float64 // maruta_buffer_delivered_events_total: events the sinks confirmed
	Appended    float64 // maruta_buffer_appended_events_total
	CPU         float64 // CPU seconds (user + system) of the process
	RSS         float64 // resident set size, bytes
	BufferBytes float64 // maruta_buffer_bytes, every state and output
	Blocked     float64 // maruta_buffer_blocked_appends
	Rejected    float64 // maruta_buffer_rejected_events_total
	Dropped     float64 // maruta_buffer_dropped_events_total
	// Cumulative histogram buckets (upper bound → count, summed over
	// label sets): maruta_forward_ack_latency_seconds and
	// maruta_buffer_fsync_duration_seconds. nil when not reported.
	AckLatency, Fsync Buckets
}

// Buckets are a Prometheus histogram's cumulative buckets: upper bound in
// seconds → observations at or below it.
type Buckets map[float64]float64

// Target reads a running maruta's /metrics and, when its pid is known,
// /proc/<pid>/stat (finer CPU and RSS than the metrics).
type Target struct {
	url    string
	pid    int
	client *http.Client
}

// NewTarget returns a Target for maruta's HTTP address (host:port or a URL;
// "" to read only the process) and pid (0: CPU and RSS from the metrics).
func NewTarget(httpAddr string, pid int) *Target {
	t := &Target{pid: pid, client: &http.Client{Timeout: 5 * time.Second}}
	if httpAddr != "" {
		t.url = httpAddr
		if !strings.Contains(t.url, "://") {
			t.url = "http://" + t.url
		}
		if !strings.HasSuffix(t.url, "/metrics") {
			t.url = strings.TrimSuffix(t.url, "/") + "/metrics"
		}
	}
	return t
}

// Sample reads the target once.
func (t *Target) Sample(ctx context.Context) (Sample, error) {
	s := Sample{Time: time.Now(), Accepted: -1, Delivered: -1, Appended: -1, CPU: -1, RSS: -1,
		BufferBytes: -1, Blocked: -1, Rejected: -1, Dropped: -1}
	if t.url != "" {
		m, hists, err := t.scrape(ctx)
		if err != nil {
			return s, err
		}
		s.AckLatency = hists["maruta_forward_ack_latency_seconds"]
		s.Fsync = hists["maruta_buffer_fsync_duration_seconds"]
		get := func(name string) float64 {
			if v, ok := m[name]; ok {
				return v
			}
			return -1
		}
		s.Accepted = get("maruta_forward_events_total")
		s.Delivered = get("maruta_buffer_delivered_events_total")
		s.Appended = get("maruta_buffer_appended_events_total")
		s.CPU = get("maruta_process_cpu_seconds_total")
		s.RSS = get("maruta_process_resident_memory_bytes")
		s.BufferBytes = get("maruta_buffer_bytes")
		s.Blocked = get("maruta_buffer_blocked_appends")
		s.Rejected = get("maruta_buffer_rejected_events_total")
		s.Dropped = get("maruta_buffer_dropped_events_total")
	}
	if t.pid > 0 {
		cpu, rss, err := ProcStat(t.pid)
		if err != nil {
			return s, err
		}
		s.CPU, s.RSS = cpu, rss
	}
	return s, nil
}

// scrape returns every metric of the exposition summed over its label
// sets, and the buckets of every histogram.
func (t *Target) scrape(ctx context.Context) (map[string]float64, map[string]Buckets, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("read maruta metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("read maruta metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("read maruta metrics: %w", err)
	}
	m, err := ParseMetrics(bufio.NewScanner(bytes.NewReader(body)))
	if err != nil {
		return nil, nil, err
	}
	return m, ParseBuckets(bufio.NewScanner(bytes.NewReader(body))), nil
}

// ParseBuckets returns the buckets of every histogram in Prometheus text
// exposition read from sc, by histogram name, summed over label sets.
func ParseBuckets(sc *bufio.Scanner) map[string]Buckets {
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	out := map[string]Buckets{}
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "_bucket{")
		if i <= 0 || line[0] == '#' {
			continue
		}
		j := strings.Index(line, `le="`)
		k := strings.LastIndexByte(line, '}')
		if j < 0 || k < j {
			continue
		}
		le, _, ok := strings.Cut(line[j+4:], `"`)
		if !ok {
			continue
		}
		bound, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		fields := strings.Fields(line[k+1:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		name := line[:i]
		if out[name] == nil {
			out[name] = Buckets{}
		}
		out[name][bound] += v
	}
	return out
}

// histStats summarises the observations between two readings of a
// histogram: their count and the quantiles 0.5 and 0.99, in milliseconds,
// interpolated linearly within a bucket (as PromQL's histogram_quantile).
func histStats(before, after Buckets) HistStats {
	if after == nil {
		return HistStats{}
	}
	bounds := make([]float64, 0, len(after))
	for b := range after {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	cum := make([]float64, len(bounds))
	for i, b := range bounds {
		cum[i] = after[b] - before[b]
	}
	if len(cum) == 0 || cum[len(cum)-1] <= 0 {
		return HistStats{}
	}
	total := cum[len(cum)-1]
	q := func(q float64) float64 {
		rank := q * total
		lo, prev := 0.0, 0.0
		for i, b := range bounds {
			if cum[i] >= rank {
				if math.IsInf(b, 1) {
					return lo * 1e3
				}
				if cum[i] == prev {
					return b * 1e3
				}
				return (lo + (b-lo)*(rank-prev)/(cum[i]-prev)) * 1e3
			}
			lo, prev = b, cum[i]
		}
		return lo * 1e3
	}
	return HistStats{Count: total, P50: q(0.5), P99: q(0.99)}
}

// ParseMetrics sums the samples of each metric name in Prometheus text
// exposition read from sc.
func ParseMetrics(sc *bufio.Scanner) (map[string]float64, error) {
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	m := map[string]float64{}
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end <= 0 {
			continue
		}
		name := line[:end]
		rest := line[end:]
		if rest[0] == '{' {
			rest = rest[strings.LastIndexByte(rest, '}')+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		m[name] += v
	}
	return m, sc.Err()
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcStat returns the CPU seconds (user + system) and resident bytes of a
// Linux process from /proc/<pid>/stat.
func ProcStat(pid int) (cpu, rss float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read process stats: %w", err)
	}
	// The command name is in parentheses and may contain spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, errors.New("read process stats: unexpected format")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime 15, rss 24.
	if len(f) < 22 {
		return 0, 0, errors.New("read process stats: unexpected format")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	pages, _ := strconv.ParseFloat(f[21], 64)
	return (ut + st) / clockTicks, pages * float64(os.Getpagesize()), nil
}
