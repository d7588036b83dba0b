package testutil

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// AthenaServer is an in-process Amazon Athena endpoint on 127.0.0.1
// speaking the service's wire protocol (AWS JSON 1.1: POST /,
// X-Amz-Target: AmazonAthena.<Operation>, errors as {"__type", "Message"})
// for the two operations `maruta athena apply` calls, StartQueryExecution
// and GetQueryExecution. No Athena runs here, so this one enforces what the
// real service does with the DDL maruta sends:
//
//   - every request is SigV4-signed for service athena in Region with
//     AccessKey/SecretKey (InvalidSignatureException / 403 otherwise);
//   - QueryString is 1 to 262,144 bytes, ClientRequestToken 32 to 128
//     characters (the SDK fills it in); the work group must exist (the
//     server has "primary" and those in WorkGroups), and a query needs a
//     result location, its own or its work group's (InvalidRequestException
//     otherwise, before any query starts);
//   - a query is QUEUED, then RUNNING, then SUCCEEDED or FAILED, one state
//     per GetQueryExecution; an unknown id is InvalidRequestException;
//   - the statement is one statement: CREATE DATABASE [IF NOT EXISTS],
//     CREATE EXTERNAL TABLE [IF NOT EXISTS] db.table (…) in an existing
//     database, ALTER TABLE db.table ADD COLUMNS (…) of an existing table
//     with no column it already has; anything else FAILS as the service's
//     parser or catalog would, with its StateChangeReason.
//
// Identifiers are read as maruta writes them, backticked.
type AthenaServer struct {
	URL       string
	Region    string
	AccessKey string
	SecretKey string

	srv        *httptest.Server
	mu         sync.Mutex
	workGroups map[string]string // name → its result location ("" none)
	databases  map[string]bool
	tables     map[string][]string // "db.table" → column names
	queries    []AthenaQuery
	violations []string
}

// AthenaQuery is a query the server was asked to run.
type AthenaQuery struct {
	ID             string
	SQL            string
	WorkGroup      string
	OutputLocation string
	// states left to report, the last one final
	states []string
	reason string
}

// StartAthena starts the endpoint; it stops when the test ends. Work group
// "primary" exists without a result location; workGroups adds others with
// theirs (name, location, name, location, …).
func StartAthena(t testing.TB, workGroups ...string) *AthenaServer {
	t.Helper()
	s := &AthenaServer{Region: "eu-west-1", AccessKey: "AKIDMARUTATEST", SecretKey: "maruta-test-secret",
		workGroups: map[string]string{"primary": ""}, databases: map[string]bool{"default": true}, tables: map[string][]string{}}
	for i := 0; i+1 < len(workGroups); i += 2 {
		s.workGroups[workGroups[i]] = workGroups[i+1]
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// SetEnv points the AWS configuration of this process and of the commands
// it starts at the server (AWS_ENDPOINT_URL_ATHENA, its key pair), and at
// nothing of the host's: no profile, no instance metadata, no region.
func (s *AthenaServer) SetEnv(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_ATHENA": s.URL, "AWS_ACCESS_KEY_ID": s.AccessKey, "AWS_SECRET_ACCESS_KEY": s.SecretKey,
		"AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
	} {
		t.Setenv(k, v)
	}
}

// Queries returns the queries started, in order.
func (s *AthenaServer) Queries() []AthenaQuery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queries)
}

// Table returns the columns of db.table and whether it exists.
func (s *AthenaServer) Table(db, table string) ([]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cols, ok := s.tables[db+"."+table]
	return slices.Clone(cols), ok
}

// Violations returns requests the real service would have refused.
func (s *AthenaServer) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violations)
}

func athenaError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "Message": msg})
}

func (s *AthenaServer) serve(w http.ResponseWriter, r *http.Request) {
	op, body, ok := readJSON11(w, r, "AmazonAthena.", athenaError)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg := checkSigV4(r, body, s.AccessKey, s.SecretKey, s.Region, "athena"); msg != "" {
		s.violations = append(s.violations, op+": "+msg)
		athenaError(w, http.StatusForbidden, "InvalidSignatureException", msg)
		return
	}
	var out any
	switch op {
	case "StartQueryExecution":
		out = s.start(w, body)
	case "GetQueryExecution":
		out = s.get(w, body)
	default:
		athenaError(w, http.StatusBadRequest, "UnknownOperationException", op)
		return
	}
	if out == nil {
		return // the error is written
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func (s *AthenaServer) invalid(w http.ResponseWriter, format string, args ...any) any {
	msg := fmt.Sprintf(format, args...)
	s.violations = append(s.violations, msg)
	athenaError(w, http.StatusBadRequest, "InvalidRequestException", msg)
	return nil
}

func (s *AthenaServer) start(w http.ResponseWriter, body []byte) any {
	var in struct {
		QueryString         string
		ClientRequestToken  string
		WorkGroup           string
		ResultConfiguration *struct{ OutputLocation string }
	}
	if err := json.Unmarshal(body, &in); err != nil {
		athenaError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return nil
	}
	if n := len(in.QueryString); n < 1 || n > 262144 {
		return s.invalid(w, "QueryString of %d bytes: 1 to 262144", n)
	}
	if n := len(in.ClientRequestToken); n < 32 || n > 128 {
		return s.invalid(w, "ClientRequestToken of %d characters: 32 to 128", n)
	}
	wg := in.WorkGroup
	if wg == "" {
		wg = "primary"
	}
	loc, ok := s.workGroups[wg]
	if !ok {
		return s.invalid(w, "WorkGroup %s is not found.", wg)
	}
	if in.ResultConfiguration != nil && in.ResultConfiguration.OutputLocation != "" {
		loc = in.ResultConfiguration.OutputLocation
	}
	if !strings.HasPrefix(loc, "s3://") {
		return s.invalid(w, "No output location provided. An output location is required either through the Workgroup result configuration setting or as an API input.")
	}
	q := AthenaQuery{ID: fmt.Sprintf("%08x-0000-4000-8000-%012x", len(s.queries)+1, time.Now().UnixNano()&0xffffffffffff),
		SQL: in.QueryString, WorkGroup: wg, OutputLocation: loc}
	final, reason := s.run(in.QueryString)
	q.states, q.reason = []string{"QUEUED", "RUNNING", final}, reason
	s.queries = append(s.queries, q)
	return map[string]string{"QueryExecutionId": q.ID}
}

var (
	athenaIdent     = "`((?:[^`]|``)+)`"
	athenaCreateDB  = regexp.MustCompile(`(?is)^CREATE (?:DATABASE|SCHEMA) (IF NOT EXISTS )?` + athenaIdent + `$`)
	athenaCreateTbl = regexp.MustCompile(`(?is)^CREATE EXTERNAL TABLE (IF NOT EXISTS )?` + athenaIdent + `\.` + athenaIdent + ` \((.*?)\)\n(?:PARTITIONED BY \(.*?\)\n)?STORED AS PARQUET\nLOCATION 's3://[^']+'(?:\nTBLPROPERTIES \(.*\))?$`)
	athenaAlter     = regexp.MustCompile(`(?is)^ALTER TABLE ` + athenaIdent + `\.` + athenaIdent + ` ADD COLUMNS \((.*)\)$`)
	athenaColumn    = regexp.MustCompile("(?m)^\\s*" + athenaIdent + " ")
)

// run executes a DDL statement against the catalog and returns its final
// state and reason.
func (s *AthenaServer) run(sql string) (string, string) {
	unq := func(id string) string { return strings.ToLower(strings.ReplaceAll(id, "``", "`")) }
	columns := func(list string) []string {
		var cols []string
		for _, m := range athenaColumn.FindAllStringSubmatch(list, -1) {
			cols = append(cols, unq(m[1]))
		}
		return cols
	}
	if i := strings.IndexByte(strings.TrimSpace(sql), ';'); i >= 0 && i < len(strings.TrimSpace(sql))-1 {
		return "FAILED", "line 1:1: Only one sql statement is allowed."
	}
	sql = strings.TrimSuffix(strings.TrimSpace(sql), ";")
	if m := athenaCreateDB.FindStringSubmatch(sql); m != nil {
		db := unq(m[2])
		if s.databases[db] && m[1] == "" {
			return "FAILED", "FAILED: Execution Error, return code 1 from org.apache.hadoop.hive.ql.exec.DDLTask. Database " + db + " already exists"
		}
		s.databases[db] = true
		return "SUCCEEDED", ""
	}
	if m := athenaCreateTbl.FindStringSubmatch(sql); m != nil {
		db, tbl := unq(m[2]), unq(m[3])
		if !s.databases[db] {
			return "FAILED", "FAILED: SemanticException [Error 10072]: Database does not exist: " + db
		}
		if _, ok := s.tables[db+"."+tbl]; ok {
			if m[1] == "" {
				return "FAILED", "FAILED: Execution Error, return code 1 from org.apache.hadoop.hive.ql.exec.DDLTask. AlreadyExistsException(message:Table " + tbl + " already exists)"
			}
			return "SUCCEEDED", ""
		}
		cols := columns(m[4])
		if len(cols) == 0 {
			return "FAILED", "line 1:1: no columns"
		}
		s.tables[db+"."+tbl] = cols
		return "SUCCEEDED", ""
	}
	if m := athenaAlter.FindStringSubmatch(sql); m != nil {
		key := unq(m[1]) + "." + unq(m[2])
		have, ok := s.tables[key]
		if !ok {
			return "FAILED", "FAILED: SemanticException [Error 10001]: Table not found " + key
		}
		add := columns(m[3])
		for _, c := range add {
			if slices.Contains(have, c) {
				return "FAILED", "FAILED: Execution Error, return code 1 from org.apache.hadoop.hive.ql.exec.DDLTask. Duplicate column name: " + c
			}
		}
		s.tables[key] = append(have, add...)
		return "SUCCEEDED", ""
	}
	return "FAILED", "line 1:1: mismatched input: expected CREATE DATABASE, CREATE EXTERNAL TABLE or ALTER TABLE ADD COLUMNS"
}

func (s *AthenaServer) get(w http.ResponseWriter, body []byte) any {
	var in struct{ QueryExecutionId string }
	if err := json.Unmarshal(body, &in); err != nil {
		athenaError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return nil
	}
	for i := range s.queries {
		q := &s.queries[i]
		if q.ID != in.QueryExecutionId {
			continue
		}
		state := q.states[0]
		if len(q.states) > 1 {
			q.states = q.states[1:]
		}
		status := map[string]any{"State": state, "SubmissionDateTime": float64(time.Now().Unix())}
		if state == "FAILED" {
			status["StateChangeReason"] = q.reason
		}
		return map[string]any{"QueryExecution": map[string]any{
			"QueryExecutionId": q.ID, "Query": q.SQL, "StatementType": "DDL", "WorkGroup": q.WorkGroup,
			"ResultConfiguration": map[string]string{"OutputLocation": q.OutputLocation},
			"Status":              status,
		}}
	}
	athenaError(w, http.StatusBadRequest, "InvalidRequestException", "QueryExecution "+in.QueryExecutionId+" was not found")
	return nil
}
