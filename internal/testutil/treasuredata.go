package testutil

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TDServer is an in-process Treasure Data API on 127.0.0.1 that checks
// what TD checks of td-agent's imports (no TD server runs here):
//
//   - Authorization: TD1 <apikey>, else 401;
//   - PUT /v3/table/import_with_id/{db}/{table}/{unique_id}/msgpack.gz (and
//     /v3/table/import/{db}/{table}/msgpack.gz): other paths 404;
//     database and table names [a-z0-9_]{3,256}, the unique id 32 hex
//     digits (td-agent's form), else 400;
//   - Content-Type application/octet-stream (else 415) and a
//     Content-Length (no chunked upload, else 411);
//   - a database or table that does not exist: 404, as TD answers;
//   - the body gunzips to a stream of msgpack maps with string keys, each
//     with an integer "time", at most 32 MiB decompressed (out_tdlog's
//     import limit); anything else is refused with 400 and kept in Errors
//     so the test fails;
//   - a unique id already imported into the table is answered 200 and not
//     imported again (counted in Duplicates);
//   - the answer carries md5_hex, the MD5 of the body as received.
//
// POST /v3/database/create/{db} and /v3/table/create/{db}/{table}/log
// create (409 when they exist, 404 for a table of a missing database).
// Fail injects errors. The server stops when the test ends.
type TDServer struct {
	// URL is the endpoint, e.g. http://127.0.0.1:41234 (import and API).
	URL    string
	APIKey string

	srv *httptest.Server
	mu  sync.Mutex
	dbs map[string]map[string]*tdTable
	ids map[string]bool // db.table/unique_id imported
	// failures to inject: status codes answered to the next imports.
	fail       []int
	errs       []string
	dups       int
	imports    int
	creates    []string
	lastHeader http.Header
}

type tdTable struct{ rows []map[string]any }

// StartTD starts a TD API that accepts apikey. Databases in dbs exist from
// the start (with no table).
func StartTD(t testing.TB, apikey string, dbs ...string) *TDServer {
	t.Helper()
	s := &TDServer{APIKey: apikey, dbs: map[string]map[string]*tdTable{}, ids: map[string]bool{}}
	for _, db := range dbs {
		s.dbs[db] = map[string]*tdTable{}
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// CreateTable makes db.table exist (and db).
func (s *TDServer) CreateTable(db, table string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dbs[db] == nil {
		s.dbs[db] = map[string]*tdTable{}
	}
	if s.dbs[db][table] == nil {
		s.dbs[db][table] = &tdTable{}
	}
}

// Fail makes the next imports answer these status codes, one each.
func (s *TDServer) Fail(statuses ...int) {
	s.mu.Lock()
	s.fail = append(s.fail, statuses...)
	s.mu.Unlock()
}

// Rows returns the records imported into db.table, in import order.
func (s *TDServer) Rows(db, table string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tb := s.dbs[db][table]; tb != nil {
		return append([]map[string]any(nil), tb.rows...)
	}
	return nil
}

// Tables lists "db.table" for every table, sorted.
func (s *TDServer) Tables() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for db, ts := range s.dbs {
		for t := range ts {
			out = append(out, db+"."+t)
		}
	}
	sort.Strings(out)
	return out
}

// Errors returns what the server refused as malformed (wire problems a
// real TD would refuse too).
func (s *TDServer) Errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errs...)
}

// Stats returns the imports answered 200 (duplicates included), the
// duplicates and the create calls made.
func (s *TDServer) Stats() (imports, duplicates int, creates []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.imports, s.dups, append([]string(nil), s.creates...)
}

// LastHeader returns the headers of the last request.
func (s *TDServer) LastHeader() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastHeader.Clone()
}

var (
	tdNameRE   = regexp.MustCompile(`^[a-z0-9_]{3,256}$`)
	tdUniqueRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

const tdImportLimit = 32 << 20

func tdError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": http.StatusText(status), "message": msg, "severity": "error"})
}

func (s *TDServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.lastHeader = r.Header.Clone()
	s.mu.Unlock()
	if r.Header.Get("Authorization") != "TD1 "+s.APIKey {
		tdError(w, http.StatusUnauthorized, "Authentication failed")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v3/"), "/")
	switch {
	case r.Method == http.MethodPut && len(parts) == 6 && parts[0] == "table" && parts[1] == "import_with_id":
		s.importData(w, r, parts[2], parts[3], parts[4], parts[5])
	case r.Method == http.MethodPut && len(parts) == 5 && parts[0] == "table" && parts[1] == "import":
		s.importData(w, r, parts[2], parts[3], "", parts[4])
	case r.Method == http.MethodPost && len(parts) == 3 && parts[0] == "database" && parts[1] == "create":
		s.create(w, parts[2], "")
	case r.Method == http.MethodPost && len(parts) == 5 && parts[0] == "table" && parts[1] == "create" && parts[4] == "log":
		s.create(w, parts[2], parts[3])
	default:
		tdError(w, http.StatusNotFound, "no such API: "+r.Method+" "+r.URL.Path)
	}
}

func (s *TDServer) create(w http.ResponseWriter, db, table string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !tdNameRE.MatchString(db) || table != "" && !tdNameRE.MatchString(table) {
		tdError(w, http.StatusBadRequest, "invalid name")
		return
	}
	if table == "" {
		s.creates = append(s.creates, "database "+db)
		if s.dbs[db] != nil {
			tdError(w, http.StatusConflict, "Database "+db+" already exists")
			return
		}
		s.dbs[db] = map[string]*tdTable{}
		json.NewEncoder(w).Encode(map[string]string{"database": db})
		return
	}
	s.creates = append(s.creates, "table "+db+"."+table)
	if s.dbs[db] == nil {
		tdError(w, http.StatusNotFound, "Database '"+db+"' does not exist")
		return
	}
	if s.dbs[db][table] != nil {
		tdError(w, http.StatusConflict, "Table "+table+" already exists")
		return
	}
	s.dbs[db][table] = &tdTable{}
	json.NewEncoder(w).Encode(map[string]string{"database": db, "table": table, "type": "log"})
}

func (s *TDServer) refuse(w http.ResponseWriter, status int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.errs = append(s.errs, msg)
	s.mu.Unlock()
	tdError(w, status, msg)
}

func (s *TDServer) importData(w http.ResponseWriter, r *http.Request, db, table, id, format string) {
	if format != "msgpack.gz" {
		s.refuse(w, http.StatusBadRequest, "format %q: td-agent imports msgpack.gz", format)
		return
	}
	if !tdNameRE.MatchString(db) || !tdNameRE.MatchString(table) {
		s.refuse(w, http.StatusBadRequest, "invalid database or table name %q.%q", db, table)
		return
	}
	if id != "" && !tdUniqueRE.MatchString(id) {
		s.refuse(w, http.StatusBadRequest, "unique id %q is not 32 hex digits", id)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/octet-stream" {
		s.refuse(w, http.StatusUnsupportedMediaType, "Content-Type %q, want application/octet-stream", ct)
		return
	}
	if r.ContentLength < 0 {
		s.refuse(w, http.StatusLengthRequired, "no Content-Length")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil || int64(len(body)) != r.ContentLength {
		s.refuse(w, http.StatusBadRequest, "body: read %d of %d bytes: %v", len(body), r.ContentLength, err)
		return
	}
	s.mu.Lock()
	if len(s.fail) > 0 {
		st := s.fail[0]
		s.fail = s.fail[1:]
		s.mu.Unlock()
		tdError(w, st, "injected failure")
		return
	}
	dbExists, tb := s.dbs[db] != nil, s.dbs[db][table]
	s.mu.Unlock()
	if !dbExists {
		tdError(w, http.StatusNotFound, "Database '"+db+"' does not exist")
		return
	}
	if tb == nil {
		tdError(w, http.StatusNotFound, "Table '"+table+"' does not exist")
		return
	}
	rows, err := decodeTDBody(body)
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "import %s.%s: %v", db, table, err)
		return
	}
	sum := md5.Sum(body)
	s.mu.Lock()
	s.imports++
	key := db + "." + table + "/" + id
	if id != "" && s.ids[key] {
		s.dups++
	} else {
		s.ids[key] = true
		tb.rows = append(tb.rows, rows...)
	}
	s.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"unique_id": id, "database": db, "table": table,
		"md5_hex": hex.EncodeToString(sum[:]), "elapsed_time": 0.001})
}

// decodeTDBody gunzips body and decodes its msgpack maps.
func decodeTDBody(body []byte) ([]map[string]any, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("not gzip: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, tdImportLimit+1))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	if len(raw) > tdImportLimit {
		return nil, fmt.Errorf("more than %d bytes of msgpack in one import", tdImportLimit)
	}
	dec := msgpack.NewDecoder(bytes.NewReader(raw))
	var rows []map[string]any
	for i := 0; ; i++ {
		v, err := dec.DecodeInterface()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %d is a %T, not a map with string keys", i, v)
		}
		switch tv := m["time"].(type) {
		case int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		default:
			return nil, fmt.Errorf("record %d: time is %T (%v), not an integer", i, tv, tv)
		}
		rows = append(rows, m)
	}
	return rows, nil
}

// Close stops the server now (an unreachable endpoint).
func (s *TDServer) Close() { s.srv.Close() }
