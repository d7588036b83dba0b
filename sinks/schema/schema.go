package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/fsutil"
)

// Column types, named as in Athena DDL. TypeJSON is a string column holding
// JSON text (Athena type string).
const (
	TypeString    = "string"
	TypeBigint    = "bigint"
	TypeInt       = "int"
	TypeDouble    = "double"
	TypeBoolean   = "boolean"
	TypeTimestamp = "timestamp"
	TypeMap       = "map<string,string>"
	TypeJSON      = "json"
)

// TimeColumn is the column holding each event's time (INT64
// TIMESTAMP(MILLIS, UTC)). A record key of the same name is stored as
// "time_" (see ColumnName).
const TimeColumn = "time"

// Column is one data column of a table.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Version is the schema version that added the column (1 for the
	// columns of the first version, and for declared columns).
	Version int `json:"version"`
}

// TableSchema is a table's data columns, in order, without the time and
// overflow columns that every table has.
type TableSchema struct {
	// Output is the output the table belongs to.
	Output string `json:"output"`
	// Mode is auto or declared.
	Mode config.SchemaMode `json:"mode"`
	// Version increases by one each time columns are added.
	Version int      `json:"version"`
	Columns []Column `json:"columns"`
	// Overflow is the name of the map<string,string> overflow column.
	Overflow string `json:"overflow"`
}

// File returns where an auto-mode table's schema is persisted:
// <data_dir>/schema/<output name>.json.
func File(dataDir, output string) string {
	return filepath.Join(dataDir, "schema", output+".json")
}

// Load returns the schema of a Parquet output: the declared columns, or for
// auto mode the persisted schema (with the configured seed columns when
// nothing is persisted yet). It reads only; athena DDL uses it.
func Load(dataDir string, out *config.Output) (TableSchema, error) {
	enc := outputEncoding(out)
	if enc == nil || enc.Format != config.FormatParquet {
		return TableSchema{}, fmt.Errorf("load schema: output %s does not write parquet", out.Name)
	}
	s := TableSchema{Output: out.Name, Mode: enc.Schema.Mode, Overflow: enc.Schema.OverflowColumn}
	if err := s.seed(enc.Schema.Columns); err != nil {
		return TableSchema{}, err
	}
	if s.Mode == config.SchemaDeclared {
		return s, nil
	}
	data, err := os.ReadFile(File(dataDir, out.Name))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return TableSchema{}, fmt.Errorf("load schema: %w", err)
	}
	var p TableSchema
	if err := json.Unmarshal(data, &p); err != nil {
		return TableSchema{}, fmt.Errorf("load schema %s: %w", File(dataDir, out.Name), err)
	}
	// Persisted columns come first (their order is history); seed columns
	// not persisted yet are appended.
	merged := TableSchema{Output: out.Name, Mode: s.Mode, Overflow: s.Overflow, Version: p.Version}
	seen := map[string]bool{}
	for _, c := range p.Columns {
		if c.Name == "" || seen[c.Name] || !validType(c.Type) {
			return TableSchema{}, fmt.Errorf("load schema %s: bad column %q (%s)", File(dataDir, out.Name), c.Name, c.Type)
		}
		seen[c.Name] = true
		merged.Columns = append(merged.Columns, c)
	}
	for _, c := range s.Columns {
		if !seen[c.Name] {
			c.Version = merged.Version + 1
			merged.Columns = append(merged.Columns, c)
		}
	}
	if len(merged.Columns) > len(p.Columns) {
		merged.Version++
	}
	return merged, nil
}

// seed sets the declared columns (version 1). A declared "time" column of
// type timestamp is the time column itself and is skipped.
func (s *TableSchema) seed(cols []config.Column) error {
	for _, c := range cols {
		name := c.Name
		if strings.EqualFold(name, TimeColumn) {
			if c.Type != TypeTimestamp {
				return fmt.Errorf("schema: column %q is the event time column; its type is timestamp, not %s", c.Name, c.Type)
			}
			continue
		}
		n, ok := ColumnName(name)
		if !ok || n != name {
			return fmt.Errorf("schema: column %q: names are lower-case letters, digits and '_' (use %q)", c.Name, n)
		}
		s.Columns = append(s.Columns, Column{Name: name, Type: c.Type, Version: 1})
	}
	if len(s.Columns) > 0 {
		s.Version = 1
	}
	return nil
}

func validType(t string) bool {
	switch t {
	case TypeString, TypeBigint, TypeInt, TypeDouble, TypeBoolean, TypeTimestamp, TypeMap, TypeJSON:
		return true
	}
	return false
}

// AthenaType returns the Athena DDL type of a column type.
func AthenaType(t string) string {
	if t == TypeJSON {
		return TypeString
	}
	return t
}

// maxColumnName bounds column names (Athena/Glue allow 255 bytes).
const maxColumnName = 128

// ColumnName maps a record key to a column name: lower case, every byte
// other than [a-z0-9_] replaced by '_'. Athena folds names to lower case and
// accepts no other characters. ok is false for an empty or too long name.
func ColumnName(key string) (string, bool) {
	if key == "" || len(key) > maxColumnName {
		return "", false
	}
	clean := true
	for i := 0; i < len(key); i++ {
		if c := key[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			clean = false
			break
		}
	}
	if clean {
		return key, true
	}
	b := []byte(key)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_':
		default:
			b[i] = '_'
		}
	}
	return string(b), true
}

// Store holds a table's schema for the encoder: the declared columns, or
// the auto-mode schema persisted under data_dir. It is safe for concurrent
// use by the flush workers.
type Store struct {
	mu      sync.Mutex
	file    string // "" for declared mode (nothing persisted)
	schema  TableSchema
	index   map[string]int // column name → position
	max     int            // column limit in auto mode
	reserve map[string]bool
}

// Open loads (or starts) the schema of a Parquet output. reserved names
// (partition columns; time and overflow always are) never become data
// columns: a key mapping to one is stored as name + "_".
func Open(dataDir string, out *config.Output, reserved []string) (*Store, error) {
	s, err := Load(dataDir, out)
	if err != nil {
		return nil, err
	}
	st := &Store{schema: s, index: map[string]int{}, reserve: map[string]bool{}}
	enc := outputEncoding(out)
	st.max = enc.Schema.MaxColumns
	if s.Mode == config.SchemaAuto {
		st.file = File(dataDir, out.Name)
	}
	for _, r := range reserved {
		st.reserve[r] = true
	}
	st.reserve[TimeColumn] = true
	st.reserve[s.Overflow] = true
	for i, c := range s.Columns {
		st.index[c.Name] = i
	}
	return st, nil
}

// Snapshot returns the current columns (the slice is never modified in
// place, only replaced) and version.
func (st *Store) Snapshot() ([]Column, int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.schema.Columns, st.schema.Version
}

// ColumnFor maps a record key to the column name it would use, applying
// the reserved-name rule; false when the key cannot be a column name.
func (st *Store) ColumnFor(key string) (string, bool) {
	n, ok := ColumnName(key)
	if !ok {
		return "", false
	}
	for st.reserve[n] {
		n += "_"
	}
	return n, true
}

// Add appends new columns (skipping names that appeared meanwhile),
// persists the schema before returning (auto mode), and returns the new
// column list and how many were added. Columns beyond the limit are not
// added.
func (st *Store) Add(cols []Column) ([]Column, int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	next := st.schema
	next.Columns = append([]Column(nil), st.schema.Columns...)
	added := 0
	for _, c := range cols {
		if _, dup := st.index[c.Name]; dup {
			continue
		}
		if len(next.Columns) >= st.max {
			break
		}
		c.Version = next.Version + 1
		next.Columns = append(next.Columns, c)
		added++
	}
	if added == 0 {
		return st.schema.Columns, 0, nil
	}
	next.Version++
	if st.file != "" {
		data, err := json.MarshalIndent(next, "", "  ")
		if err != nil {
			return nil, 0, err
		}
		if err := fsutil.WriteFileAtomic(st.file, append(data, '\n')); err != nil {
			return nil, 0, fmt.Errorf("persist schema: %w", err)
		}
	}
	for i := len(st.schema.Columns); i < len(next.Columns); i++ {
		st.index[next.Columns[i].Name] = i
	}
	st.schema = next
	return next.Columns, added, nil
}

// outputEncoding returns the encoding of a file or s3 output, or nil.
func outputEncoding(out *config.Output) *config.Encoding { return out.Encoding() }
