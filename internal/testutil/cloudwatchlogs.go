package testutil

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// CWLServer is an in-process Amazon CloudWatch Logs endpoint on 127.0.0.1
// speaking the service's wire protocol (AWS JSON 1.1: POST /,
// X-Amz-Target: Logs_20140328.<Operation>, errors as {"__type", "message"})
// for the operations maruta calls: PutLogEvents, CreateLogGroup,
// CreateLogStream, PutRetentionPolicy. No CloudWatch Logs server runs
// here, so this one enforces what the real service does (PutLogEvents
// API reference):
//
//   - every request is SigV4-signed for service logs in Region with
//     AccessKey/SecretKey: the Authorization header is parsed and the
//     signature recomputed (AccessDeniedException / 403 otherwise);
//   - log group names [.\-_/#A-Za-z0-9]{1,512}, stream names 1-512 without
//     ':' or '*'; a missing group or stream is ResourceNotFoundException;
//   - a PutLogEvents batch has 1 to 10,000 events, each message 1 byte or
//     more and at most 1,048,576 bytes with its 26 bytes of overhead, in
//     all at most 1,048,576 bytes counted as the sum of the messages'
//     UTF-8 bytes plus 26 per event, valid UTF-8, in chronological order,
//     and its events within 14 days past and 2 hours future span at most
//     24 hours: otherwise InvalidParameterException and nothing is stored,
//     and the violation is kept in Violations so the test fails;
//   - events older than 14 days (tooOldLogEventEndIndex), older than the
//     group's retention (expiredLogEventEndIndex) or more than 2 hours in
//     the future (tooNewLogEventStartIndex) are rejected and reported,
//     the others stored;
//   - retention days are one of the accepted values.
//
// Throttle, Unavailable and Deny inject errors. Now is the server's clock.
type CWLServer struct {
	URL       string
	Region    string
	AccessKey string
	SecretKey string
	// Now is the service's clock (default time.Now).
	Now func() time.Time

	srv        *httptest.Server
	mu         sync.Mutex
	groups     map[string]*cwlGroup
	inject     []string // __type of errors for the next PutLogEvents
	passFirst  int      // PutLogEvents calls that succeed before inject applies
	violations []string
	calls      map[string]int
}

type cwlGroup struct {
	retention int
	kmsKeyID  string
	streams   map[string][]CWLEvent
}

// CWLEvent is a stored log event.
type CWLEvent struct {
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
}

// StartCWL starts the endpoint; it stops when the test ends.
func StartCWL(t testing.TB) *CWLServer {
	t.Helper()
	s := &CWLServer{Region: "ap-northeast-1", AccessKey: "AKIDMARUTATEST", SecretKey: "maruta-test-secret",
		Now: time.Now, groups: map[string]*cwlGroup{}, calls: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Close stops the server now.
func (s *CWLServer) Close() { s.srv.Close() }

// CreateStream makes group and stream exist.
func (s *CWLServer) CreateStream(group, stream string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	if g == nil {
		g = &cwlGroup{streams: map[string][]CWLEvent{}}
		s.groups[group] = g
	}
	if _, ok := g.streams[stream]; !ok {
		g.streams[stream] = nil
	}
}

// Inject makes the next PutLogEvents calls fail with these error types
// (ThrottlingException, ServiceUnavailableException, AccessDeniedException,
// …), one each.
func (s *CWLServer) Inject(types ...string) { s.InjectAfter(0, types...) }

// InjectAfter lets n PutLogEvents calls through, then fails the next ones
// with types, one each.
func (s *CWLServer) InjectAfter(n int, types ...string) {
	s.mu.Lock()
	s.passFirst = n
	s.inject = append(s.inject, types...)
	s.mu.Unlock()
}

// Events returns what a stream holds.
func (s *CWLServer) Events(group, stream string) []CWLEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groups[group]; g != nil {
		return slices.Clone(g.streams[stream])
	}
	return nil
}

// Streams lists "group stream" pairs, sorted.
func (s *CWLServer) Streams() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for gn, g := range s.groups {
		for sn := range g.streams {
			out = append(out, gn+" "+sn)
		}
	}
	slices.Sort(out)
	return out
}

// Group returns a group's retention and KMS key, and whether it exists.
func (s *CWLServer) Group(name string) (retention int, kmsKeyID string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[name]
	if g == nil {
		return 0, "", false
	}
	return g.retention, g.kmsKeyID, true
}

// Violations returns requests the real service would have refused.
func (s *CWLServer) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violations)
}

// Calls returns how many times an operation was called.
func (s *CWLServer) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func cwlError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

// checkSignature verifies the SigV4 signature of r (body already read).
func (s *CWLServer) checkSignature(r *http.Request, body []byte) string {
	return checkSigV4(r, body, s.AccessKey, s.SecretKey, s.Region, "logs")
}

func (s *CWLServer) serve(w http.ResponseWriter, r *http.Request) {
	op, body, ok := readJSON11(w, r, "Logs_20140328.", cwlError)
	if !ok {
		return
	}
	if msg := s.checkSignature(r, body); msg != "" {
		s.violate("%s: %s", op, msg)
		cwlError(w, http.StatusForbidden, "InvalidSignatureException", msg)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	var in struct {
		LogGroupName    string     `json:"logGroupName"`
		LogStreamName   string     `json:"logStreamName"`
		KmsKeyID        string     `json:"kmsKeyId"`
		RetentionInDays int        `json:"retentionInDays"`
		LogEvents       []CWLEvent `json:"logEvents"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		cwlError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	if !cwlGroupRE.MatchString(in.LogGroupName) {
		s.violateLocked("%s: log group name %q", op, in.LogGroupName)
		cwlError(w, http.StatusBadRequest, "InvalidParameterException", "1 validation error detected: Value at 'logGroupName' failed to satisfy constraint")
		return
	}
	g := s.groups[in.LogGroupName]
	switch op {
	case "CreateLogGroup":
		if g != nil {
			cwlError(w, http.StatusBadRequest, "ResourceAlreadyExistsException", "The specified log group already exists")
			return
		}
		s.groups[in.LogGroupName] = &cwlGroup{kmsKeyID: in.KmsKeyID, streams: map[string][]CWLEvent{}}
	case "PutRetentionPolicy":
		if g == nil {
			cwlError(w, http.StatusBadRequest, "ResourceNotFoundException", "The specified log group does not exist.")
			return
		}
		if !slices.Contains([]int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}, in.RetentionInDays) {
			s.violateLocked("retention %d", in.RetentionInDays)
			cwlError(w, http.StatusBadRequest, "InvalidParameterException", "invalid retentionInDays")
			return
		}
		g.retention = in.RetentionInDays
	case "CreateLogStream", "PutLogEvents":
		if !cwlStreamRE.MatchString(in.LogStreamName) || utf8.RuneCountInString(in.LogStreamName) > 512 {
			s.violateLocked("%s: log stream name %q", op, in.LogStreamName)
			cwlError(w, http.StatusBadRequest, "InvalidParameterException", "1 validation error detected: Value at 'logStreamName' failed to satisfy constraint")
			return
		}
		if g == nil {
			cwlError(w, http.StatusBadRequest, "ResourceNotFoundException", "The specified log group does not exist.")
			return
		}
		_, exists := g.streams[in.LogStreamName]
		if op == "CreateLogStream" {
			if exists {
				cwlError(w, http.StatusBadRequest, "ResourceAlreadyExistsException", "The specified log stream already exists")
				return
			}
			g.streams[in.LogStreamName] = nil
			break
		}
		if s.passFirst > 0 {
			s.passFirst--
		} else if len(s.inject) > 0 {
			typ := s.inject[0]
			s.inject = s.inject[1:]
			status := http.StatusBadRequest
			if typ == "ServiceUnavailableException" {
				status = http.StatusServiceUnavailable
			}
			cwlError(w, status, typ, "injected")
			return
		}
		if !exists {
			cwlError(w, http.StatusBadRequest, "ResourceNotFoundException", "The specified log stream does not exist.")
			return
		}
		s.putLogEvents(w, g, in.LogStreamName, in.LogEvents)
		return
	default:
		cwlError(w, http.StatusBadRequest, "UnknownOperationException", op)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Write([]byte("{}"))
}

var (
	cwlGroupRE  = regexp.MustCompile(`^[.\-_/#A-Za-z0-9]{1,512}$`)
	cwlStreamRE = regexp.MustCompile(`^[^:*]+$`)
)

// PutLogEvents limits (the API reference).
const (
	cwlMaxBatchBytes = 1048576
	cwlEventOverhead = 26
	cwlMaxEvents     = 10000
	cwlMaxSpan       = 24 * time.Hour
	cwlMaxAge        = 14 * 24 * time.Hour
	cwlMaxFuture     = 2 * time.Hour
)

func (s *CWLServer) putLogEvents(w http.ResponseWriter, g *cwlGroup, stream string, evs []CWLEvent) {
	refuse := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		s.violateLocked("PutLogEvents: %s", msg)
		cwlError(w, http.StatusBadRequest, "InvalidParameterException", msg)
	}
	if len(evs) < 1 || len(evs) > cwlMaxEvents {
		refuse("%d log events: a batch holds 1 to %d", len(evs), cwlMaxEvents)
		return
	}
	now := s.Now()
	tooOldEnd, expiredEnd, tooNewStart := 0, 0, len(evs)
	size := 0
	var first, last int64 = -1, -1
	for i, e := range evs {
		n := len(e.Message)
		if n == 0 {
			refuse("event %d: empty message", i)
			return
		}
		if n+cwlEventOverhead > cwlMaxBatchBytes {
			refuse("event %d: %d bytes exceeds the 1 MB event limit", i, n+cwlEventOverhead)
			return
		}
		if !utf8.ValidString(e.Message) {
			refuse("event %d: message is not UTF-8", i)
			return
		}
		size += n + cwlEventOverhead
		if i > 0 && e.Timestamp < evs[i-1].Timestamp {
			refuse("Log events in a single PutLogEvents request must be in chronological order (event %d)", i)
			return
		}
		ts := time.UnixMilli(e.Timestamp)
		switch {
		case ts.Before(now.Add(-cwlMaxAge)):
			tooOldEnd = i + 1
		case g.retention > 0 && ts.Before(now.Add(-time.Duration(g.retention)*24*time.Hour)):
			expiredEnd = i + 1
		case ts.After(now.Add(cwlMaxFuture)):
			if tooNewStart == len(evs) {
				tooNewStart = i
			}
		default:
			if first < 0 {
				first = e.Timestamp
			}
			last = e.Timestamp
		}
	}
	if size > cwlMaxBatchBytes {
		refuse("Upload too large: %d bytes exceeds limit of %d", size, cwlMaxBatchBytes)
		return
	}
	if first >= 0 && time.Duration(last-first)*time.Millisecond > cwlMaxSpan {
		refuse("The batch of log events in a single PutLogEvents request cannot span more than 24 hours")
		return
	}
	lo := max(tooOldEnd, expiredEnd)
	if lo < tooNewStart {
		g.streams[stream] = append(g.streams[stream], evs[lo:tooNewStart]...)
	}
	out := map[string]any{}
	rej := map[string]int{}
	if tooOldEnd > 0 {
		rej["tooOldLogEventEndIndex"] = tooOldEnd
	}
	if expiredEnd > 0 {
		rej["expiredLogEventEndIndex"] = expiredEnd
	}
	if tooNewStart < len(evs) {
		rej["tooNewLogEventStartIndex"] = tooNewStart
	}
	if len(rej) > 0 {
		out["rejectedLogEventsInfo"] = rej
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func (s *CWLServer) violate(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violateLocked(format, args...)
}

func (s *CWLServer) violateLocked(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}
