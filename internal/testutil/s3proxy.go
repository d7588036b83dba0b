package testutil

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// S3FaultProxy forwards requests to an S3Server and answers the ones its
// fail function selects the way S3 answers when it throttles (503
// SlowDown, with S3's XML error body), so clients see a real S3 error on
// the wire. It counts the requests of each operation. Closed when the test
// ends.
type S3FaultProxy struct {
	// URL is the proxy's endpoint, for the S3 client.
	URL string

	mu     sync.Mutex
	counts map[string]int
}

// FaultProxy starts an S3FaultProxy in front of s. fail gets the
// operation (S3Op) and how many requests of it the proxy has seen,
// this one included.
func (s *S3Server) FaultProxy(t testing.TB, fail func(op string, n int) bool) *S3FaultProxy {
	t.Helper()
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &S3FaultProxy{counts: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := S3Op(r)
		p.mu.Lock()
		p.counts[op]++
		n := p.counts[op]
		p.mu.Unlock()
		if fail(op, n) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><Resource>%s</Resource><RequestId>fault-%d</RequestId></Error>`, r.URL.Path, n)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	p.URL = ts.URL
	return p
}

// Count returns how many requests of operation op the proxy has seen.
func (p *S3FaultProxy) Count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[op]
}

// S3Op names the S3 operation of a path-style request: PutObject,
// UploadPart, CreateMultipartUpload, CompleteMultipartUpload,
// AbortMultipartUpload, HeadObject, GetObject, or the method.
func S3Op(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPut && q.Has("partNumber"):
		return "UploadPart"
	case r.Method == http.MethodPut:
		return "PutObject"
	case r.Method == http.MethodPost && q.Has("uploads"):
		return "CreateMultipartUpload"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload"
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload"
	case r.Method == http.MethodHead:
		return "HeadObject"
	case r.Method == http.MethodGet:
		return "GetObject"
	}
	return r.Method
}
