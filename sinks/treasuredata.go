package sinks

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
)

// TreasureData is the sink of a treasure_data output: Treasure Data's
// import API, the one td-agent's out_tdlog (fluent-plugin-td) uses.
//
// The wire (td-client's import with a unique id):
//
//	PUT {endpoint}/v3/table/import_with_id/{database}/{table}/{unique id}/msgpack.gz
//	Authorization: TD1 {apikey}
//	Content-Type: application/octet-stream
//	body: gzip of a stream of msgpack maps, each with "time": event time,
//	      integer seconds (a record's own "time" is replaced, as out_tdlog does)
//	200: {"unique_id", "database", "table", "md5_hex": MD5 of the body, …}
//
// A chunk's events are grouped by database and table (the templates are
// rendered per event; names normalized as td-client does); each group is
// one import, or several parts when its msgpack passes 32 MiB (out_tdlog's
// IMPORT_SIZE_LIMIT). The unique id of part i of a group is derived from
// the node, the output, the buffer chunk id, the database, the table and
// i: a chunk the buffer retries (also after a restart) carries the same
// ids, and TD imports an id once. Groups are found in a first pass over
// the chunk and encoded in a pass each, so memory holds one import.
//
// A 404 (database or table missing) creates them when auto_create_table
// is on (POST /v3/database/create/{db}, POST /v3/table/create/{db}/{table}/log;
// 409 means another writer created it) and imports again; otherwise the
// chunk is Permanent. 401/403 (the key is refused) and other 4xx are
// Permanent; 429, 5xx, a wrong md5_hex and network errors are retried by
// the buffer. An event whose database or table template has no value is
// an error before anything is sent: the chunk goes to the dead letter
// whole. The API key is never logged or put into an error.
//
// Write is safe for concurrent use.
type TreasureData struct {
	eventSinkBase
	cfg        *config.TreasureDataOutput
	dest       *destTemplates
	client     *http.Client
	importURL  string
	apiURL     string
	autoCreate bool
}

var _ delivery.Sink = (*TreasureData)(nil)

// tdImportLimit is var for tests.
var tdImportLimit = config.TreasureDataImportLimit

// NewTreasureData builds the sink of a treasure_data output. Nothing is
// contacted before the first Write.
func NewTreasureData(opts Options) (*TreasureData, error) {
	out := opts.Output
	if out == nil || out.TreasureData == nil {
		return nil, errors.New("new treasure_data sink: not a treasure_data output")
	}
	cfg := out.TreasureData
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("output %s: apikey is empty", out.Name)
	}
	s := &TreasureData{
		eventSinkBase: newEventSinkBase(opts),
		cfg:           cfg,
		dest:          newDestTemplates([]string{cfg.Database, cfg.Table}, []func(string) string{tdNormalize, tdNormalize}),
		client:        &http.Client{Timeout: cfg.Timeout.D()},
		importURL:     strings.TrimSuffix(cfg.Endpoint, "/"),
		apiURL:        strings.TrimSuffix(cfg.APIEndpoint, "/"),
		autoCreate:    cfg.AutoCreateTable == nil || *cfg.AutoCreateTable,
	}
	for _, k := range []string{kindThrottle, kindServer, kindNetwork, kindPermanent} {
		s.sm.errors.WithLabelValues(k)
	}
	s.sm.dropped.WithLabelValues("invalid_record")
	s.log.Info("treasure_data sink ready", "endpoint", s.importURL, "api_endpoint", s.apiURL,
		"database", cfg.Database, "table", cfg.Table, "auto_create_table", s.autoCreate)
	return s, nil
}

// Close implements delivery.Sink.
func (s *TreasureData) Close() error { s.client.CloseIdleConnections(); return nil }

// tdNormalize makes a rendered name a valid database or table name the way
// td-client's normalize_database_name does: lower case, characters other
// than [a-z0-9_] as '_', padded with '_' to 3, cut to 256.
func tdNormalize(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			b[i] = '_'
		}
	}
	for len(b) < 3 {
		b = append(b, '_')
	}
	if len(b) > 256 {
		b = append(b[:254], '_', '_')
	}
	return string(b)
}

type tdGroup struct {
	db, table string
	events    int
}

// Write implements delivery.Sink: see TreasureData.
func (s *TreasureData) Write(ctx context.Context, c delivery.Chunk) error {
	start := time.Now()
	info := c.Info()
	defer func() { s.sm.duration.Observe(since(start)) }()
	groups, invalid, err := s.plan(c)
	if err != nil {
		s.sm.errors.WithLabelValues(kindPermanent).Inc()
		s.log.Error("chunk cannot be imported; it goes to the dead letter", "chunk", info.ID, "err", err)
		return fmt.Errorf("treasure_data chunk %s: %w", info.ID, err)
	}
	imported := 0
	for _, g := range groups {
		n, err := s.importGroup(ctx, c, info, g)
		imported += n
		if err != nil {
			return fmt.Errorf("treasure_data chunk %s: %s.%s: %w", info.ID, g.db, g.table, err)
		}
	}
	if invalid > 0 {
		s.sm.dropped.WithLabelValues("invalid_record").Add(float64(invalid))
		s.log.Error("events dropped: record is not a msgpack map", "chunk", info.ID, "reason", "invalid_record", "events", invalid)
	}
	s.sm.inputBytes.Add(float64(info.Bytes))
	s.log.Debug("chunk imported", "chunk", info.ID, "tables", len(groups), "imports", imported)
	return nil
}

// plan finds the chunk's tables in the order they first appear. An event
// whose template has no value makes the chunk Permanent.
func (s *TreasureData) plan(c delivery.Chunk) (groups []*tdGroup, invalid int, err error) {
	byName := map[[2]string]*tdGroup{}
	var missing int
	var firstMissing, missingTag string
	err = c.Scan(func(tag string, t event.Time, record []byte) error {
		if msgpack.Peek(record) != msgpack.Map {
			invalid++
			return nil
		}
		r := s.dest.render(tag, t, record)
		if r.missing != "" {
			if missing++; missing == 1 {
				firstMissing, missingTag = r.missing, strings.Clone(tag)
			}
			return nil
		}
		k := [2]string{r.names[0], r.names[1]}
		g := byName[k]
		if g == nil {
			g = &tdGroup{db: k[0], table: k[1]}
			byName[k] = g
			groups = append(groups, g)
		}
		g.events++
		return nil
	})
	if err != nil {
		return nil, 0, delivery.Permanent(fmt.Errorf("read chunk: %w", err))
	}
	if missing > 0 {
		return nil, 0, delivery.Permanent(fmt.Errorf("%d events have no value for %s in database %q / table %q (first with tag %s): give the key a default (${key:-default}) or route those events elsewhere",
			missing, firstMissing, s.cfg.Database, s.cfg.Table, missingTag))
	}
	return groups, invalid, nil
}

// importGroup encodes and imports one table's events, in parts of at most
// tdImportLimit msgpack bytes. It returns how many imports succeeded.
func (s *TreasureData) importGroup(ctx context.Context, c delivery.Chunk, info delivery.ChunkInfo, g *tdGroup) (int, error) {
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	var rec []byte
	part, raw, events, done := 0, 0, 0, 0
	flush := func() error {
		if err := zw.Close(); err != nil {
			return err
		}
		if err := s.importPart(ctx, g, s.uniqueID(info.ID, g, part), body.Bytes(), events); err != nil {
			return err
		}
		s.sm.objects.Inc()
		s.sm.bytes.Add(float64(body.Len()))
		s.sm.rows.Add(float64(events))
		done++
		part, raw, events = part+1, 0, 0
		body.Reset()
		zw.Reset(&body)
		return nil
	}
	err := c.Scan(func(tag string, t event.Time, record []byte) error {
		if msgpack.Peek(record) != msgpack.Map {
			return nil
		}
		r := s.dest.render(tag, t, record)
		if r.names[0] != g.db || r.names[1] != g.table {
			return nil
		}
		var err error
		rec, err = appendTDRecord(rec[:0], t, record)
		if err != nil {
			return delivery.Permanent(err)
		}
		if events > 0 && raw+len(rec) > tdImportLimit {
			if err := flush(); err != nil {
				return err
			}
		}
		if _, err := zw.Write(rec); err != nil {
			return err
		}
		raw += len(rec)
		events++
		return nil
	})
	if err == nil && events > 0 {
		err = flush()
	}
	return done, err
}

// appendTDRecord appends record with its "time" key replaced by the event
// time in whole seconds (out_tdlog's record['time'] = time.to_i).
func appendTDRecord(dst []byte, t event.Time, record []byte) ([]byte, error) {
	n, _, err := msgpack.ReadMapHeader(record)
	if err != nil {
		return dst, fmt.Errorf("read record: %w", err)
	}
	keep := n
	err = msgpack.MapEach(record, 100, func(k, _ []byte) error {
		if isKey(k, "time") {
			keep--
		}
		return nil
	})
	if err != nil {
		return dst, fmt.Errorf("read record: %w", err)
	}
	dst = msgpack.AppendMapHeader(dst, keep+1)
	err = msgpack.MapEach(record, 100, func(k, v []byte) error {
		if !isKey(k, "time") {
			dst = append(append(dst, k...), v...)
		}
		return nil
	})
	if err != nil {
		return dst, fmt.Errorf("read record: %w", err)
	}
	sec, _ := t.Unix()
	dst = msgpack.AppendString(dst, "time")
	return msgpack.AppendInt(dst, sec), nil
}

// isKey reports whether the raw msgpack key k is the string name.
func isKey(k []byte, name string) bool {
	if t := msgpack.Peek(k); t != msgpack.Str && t != msgpack.Bin {
		return false
	}
	b, _, _, err := msgpack.ReadBytes(k)
	return err == nil && string(b) == name
}

// uniqueID is the import id of part of a group: 32 hex digits (16 bytes,
// the form out_tdlog sends a fluentd chunk's unique_id in).
func (s *TreasureData) uniqueID(chunkID string, g *tdGroup, part int) string {
	h := sha256.New()
	for _, v := range []string{s.node, s.name, chunkID, g.db, g.table, fmt.Sprint(part)} {
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// importPart sends one import, creating the database and table on a 404
// when allowed.
func (s *TreasureData) importPart(ctx context.Context, g *tdGroup, id string, body []byte, events int) error {
	err := s.put(ctx, g, id, body)
	var he *tdHTTPError
	if errors.As(err, &he) && he.status == http.StatusNotFound && s.autoCreate {
		s.log.Info("creating Treasure Data table", "database", g.db, "table", g.table, "after", he.Error())
		if err = s.createTable(ctx, g); err == nil {
			err = s.put(ctx, g, id, body)
		}
	}
	if err != nil {
		kind, permanent := classifyTDError(err)
		s.sm.errors.WithLabelValues(kind).Inc()
		if permanent {
			s.log.Error("import refused; the chunk goes to the dead letter", "database", g.db, "table", g.table, "err", err)
			return delivery.Permanent(err)
		}
		s.log.Warn("import failed; the buffer retries", "database", g.db, "table", g.table, "kind", kind, "err", err)
		return err
	}
	s.log.Debug("imported", "database", g.db, "table", g.table, "unique_id", id, "events", events, "bytes", len(body))
	return nil
}

// tdHTTPError is a non-2xx answer of the TD API.
type tdHTTPError struct {
	status int
	op     string
	msg    string
}

func (e *tdHTTPError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.op, e.status, e.msg)
}

func classifyTDError(err error) (kind string, permanent bool) {
	if delivery.IsPermanent(err) {
		return kindPermanent, true
	}
	var he *tdHTTPError
	if errors.As(err, &he) {
		switch {
		case he.status == http.StatusTooManyRequests:
			return kindThrottle, false
		case he.status >= 500 || he.status == 0:
			return kindServer, false
		case he.status == http.StatusRequestTimeout:
			return kindNetwork, false
		}
		return kindPermanent, true
	}
	return kindNetwork, false
}

func (s *TreasureData) put(ctx context.Context, g *tdGroup, id string, body []byte) error {
	u := s.importURL + "/v3/table/import_with_id/" + url.PathEscape(g.db) + "/" + url.PathEscape(g.table) + "/" + id + "/msgpack.gz"
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return delivery.Permanent(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := s.do(req)
	if err != nil {
		return err
	}
	var ans struct {
		MD5Hex string `json:"md5_hex"`
	}
	if err := json.Unmarshal(resp, &ans); err != nil {
		return &tdHTTPError{status: 0, op: "import", msg: "answer is not JSON: " + shorten(string(resp))}
	}
	if sum := md5.Sum(body); ans.MD5Hex != "" && ans.MD5Hex != hex.EncodeToString(sum[:]) {
		return &tdHTTPError{status: 0, op: "import", msg: fmt.Sprintf("md5_hex %s does not match the body's %x: the upload was damaged", ans.MD5Hex, sum)}
	}
	return nil
}

// createTable creates the table, and the database first when the table's
// creation says it is missing. An existing one (409) is fine.
func (s *TreasureData) createTable(ctx context.Context, g *tdGroup) error {
	table := s.apiURL + "/v3/table/create/" + url.PathEscape(g.db) + "/" + url.PathEscape(g.table) + "/log"
	err := s.post(ctx, table)
	var he *tdHTTPError
	if errors.As(err, &he) && he.status == http.StatusNotFound {
		if err = s.post(ctx, s.apiURL+"/v3/database/create/"+url.PathEscape(g.db)); err == nil {
			err = s.post(ctx, table)
		}
	}
	return err
}

func (s *TreasureData) post(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return delivery.Permanent(err)
	}
	_, err = s.do(req)
	var he *tdHTTPError
	if errors.As(err, &he) && he.status == http.StatusConflict {
		return nil
	}
	return err
}

// do sends req with the API key and returns the body of a 2xx answer.
func (s *TreasureData) do(req *http.Request) ([]byte, error) {
	req.Header.Set("Authorization", "TD1 "+s.cfg.APIKey)
	req.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	req.Header.Set("User-Agent", "maruta")
	resp, err := s.client.Do(req)
	if err != nil {
		// The URL holds no secret; the error names it.
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	op := "import"
	if req.Method == http.MethodPost {
		op = "create " + strings.TrimPrefix(req.URL.Path, "/v3/")
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		msg := shorten(string(b))
		if json.Unmarshal(b, &e) == nil && (e.Message != "" || e.Error != "") {
			msg = strings.TrimSpace(e.Error + ": " + e.Message)
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			msg += " (is apikey a valid key with write access to this database?)"
		}
		return nil, &tdHTTPError{status: resp.StatusCode, op: op, msg: msg}
	}
	return b, nil
}

func shorten(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
