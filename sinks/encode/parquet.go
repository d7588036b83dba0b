package encode

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/marutalog/maruta/internal/arena"
	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/sinks/schema"
)

// The Parquet encoder turns a chunk into one Parquet file in two streaming
// passes over the chunk on disk:
//
//  1. inspect: find the keys of every record, infer the type of keys the
//     table does not have yet, add them to the table schema (persisted before
//     the file is written), and note which columns this chunk uses.
//  2. write: decode each record once, convert values to their column's type
//     and hand rows to parquet-go in small batches.
//
// So the file schema is fixed before the first row, and memory is bounded by
// one row group (RowGroupRows rows or rowGroupBytes of records, whichever
// comes first) plus a batch of rows, never by the chunk or file size.
//
// Pass 1 costs about a seventh of the encode (it reads, checks and walks
// the chunk once more), and a table's chunks mostly repeat the same keys.
// So after the first file the encoder keeps a plan (filePlan): the columns
// and encodings of the files so far. A chunk is then written in one pass
// with the plan's columns (a column the chunk lacks is all NULL in its
// file, as Athena shows an absent column anyway) and encodings (dictionary
// or plain, as sampled from the latest chunk with enough values of the
// column, so a file follows its predecessor); the first value of a key
// outside the plan stops that pass with ErrPlanMiss, and the sink writes the
// chunk again in two passes (encode with twoPass), which also widens the plan.
//
// Rows are written in sort_by order (default container_name, then time):
// the write pass reads the chunk through sortedScan, which sorts runs in
// memory and merges them from a spill file when the chunk is larger than a
// run. One file then holds one container after the other, so a row group's
// statistics on container_name are narrow (readers skip the row groups of
// other containers) and repeated values compress to almost nothing. With
// sort_by [time] alone, pass 1 (when it runs) also finds whether the chunk
// is already in order, which then needs no sort.
//
// File columns: `time` (INT64 TIMESTAMP(MILLIS, UTC), required), the table's
// columns that occur in the chunk (one pass: the plan's), in table order,
// and the overflow column (map<string,string>, NULL when a row has nothing
// in it). Strings and integers are dictionary encoded (falling back to plain
// when a column's dictionary passes dictionaryMaxBytes); data pages are v1
// with statistics, and the column and offset indexes are written.

const (
	// rowGroupBytes bounds a row group by the raw size of its records.
	rowGroupBytes = 64 << 20
	// rowBatch is how many rows are handed to parquet-go at once.
	rowBatch = 256
	// dictionaryMaxBytes is where a column's dictionary gives way to plain.
	dictionaryMaxBytes = 1 << 20
	// maxDepth bounds msgpack nesting when converting nested values.
	maxDepth = 100
	// arenaBlock is the size of the arena blocks holding a batch's records
	// and strings; up to rowGroupBytes of blocks are kept from batch to batch.
	arenaBlock = 1 << 20
)

// column type codes, for fast switches.
type colType uint8

const (
	ctString colType = iota
	ctJSON
	ctBigint
	ctInt
	ctDouble
	ctBool
	ctTimestamp
	ctMap
)

func colTypeOf(t string) colType {
	switch t {
	case schema.TypeJSON:
		return ctJSON
	case schema.TypeBigint:
		return ctBigint
	case schema.TypeInt:
		return ctInt
	case schema.TypeDouble:
		return ctDouble
	case schema.TypeBoolean:
		return ctBool
	case schema.TypeTimestamp:
		return ctTimestamp
	case schema.TypeMap:
		return ctMap
	}
	return ctString
}

// Parquet writes Parquet files (see the top of this file). Safe for
// concurrent use.
type Parquet struct {
	store        *schema.Store
	declared     bool
	overflow     string
	codec        compress.Codec
	rowGroupRows int
	sortKey      sortKey // sort_by
	tmpDir       string  // sort spills; "" = os.TempDir()
	log          *slog.Logger
	// unsorted is set when the last chunk was not in sort_by order; while
	// chunks are (a tag per container), the next is checked in one cheap
	// pass and written without sorting when it is too.
	unsorted atomic.Bool

	planMu sync.Mutex
	plan   *filePlan // nil until the first file is written
}

// filePlan is the columns of the files written so far, by table column
// index (a table only ever appends columns), and their encodings.
type filePlan struct {
	present, dict []bool
}

// widenPlan adds the columns (and encodings) of a two-pass file to the plan.
func (e *Parquet) widenPlan(st *pqState) {
	e.planMu.Lock()
	defer e.planMu.Unlock()
	p := e.plan
	if p == nil {
		p = &filePlan{}
	}
	n := max(len(p.present), len(st.cols))
	np := &filePlan{present: make([]bool, n), dict: make([]bool, n)}
	copy(np.present, p.present)
	copy(np.dict, p.dict)
	for i, c := range st.cols {
		if !st.present[i] {
			continue
		}
		// A column's encoding follows the latest chunk that had enough of
		// its values to tell; a column new to the plan starts with its own.
		if s := st.samples[c.Name]; !np.present[i] || s.decided() {
			np.dict[i] = s.dictionary()
		}
		np.present[i] = true
	}
	e.plan = np
}

func (e *Parquet) currentPlan() *filePlan {
	e.planMu.Lock()
	defer e.planMu.Unlock()
	return e.plan
}

// zstdCodec is zstd at its fastest level: on Docker-shaped records it makes
// files as small as the default level (BenchmarkParquetEncodeDocker: ratio
// 13.4 vs 13.0; Raw: 9.52 both) for 10% less encode CPU, and the encoder's
// zstd was the largest single cost of a Parquet output. Its window is
// bounded (see pageZstd).
var zstdCodec compress.Codec = &pageZstd{}

// NewParquet returns the Parquet encoder of an output's encoding, writing
// the table of store. Sorting (sort_by_time) spills under tmpDir ("" =
// the system's temporary folder).
func NewParquet(enc *config.Encoding, store *schema.Store, tmpDir string, log *slog.Logger) (*Parquet, error) {
	var codec compress.Codec
	switch enc.Compression {
	case config.CompressionZstd:
		codec = zstdCodec
	case config.CompressionSnappy:
		codec = &parquet.Snappy
	case config.CompressionGzip:
		codec = &parquet.Gzip
	case config.CompressionNone:
		codec = &parquet.Uncompressed
	default:
		return nil, fmt.Errorf("parquet compression %q is not zstd, snappy, gzip or none", enc.Compression)
	}
	return &Parquet{
		store:        store,
		declared:     enc.Schema.Mode == config.SchemaDeclared,
		overflow:     enc.Schema.OverflowColumn,
		codec:        codec,
		rowGroupRows: enc.RowGroupRows,
		sortKey:      newSortKey(enc.SortBy),
		tmpDir:       tmpDir,
		log:          log,
	}, nil
}

// Ext implements Encoder.
func (e *Parquet) Ext() string { return "parquet" }

// ContentType implements Encoder.
func (e *Parquet) ContentType() string { return "application/vnd.apache.parquet" }

// keyRef is what a record key maps to.
type keyRef struct {
	col     int32  // table column index; -1 when the value goes to overflow; -2 to skip (only nulls seen)
	pending int32  // index into pqState.pending while pass 1 runs, else -1
	reason  string // overflow reason when col == -1
	sample  *cardSample
}

// cardSample estimates a column's cardinality from its first values in the
// chunk, to choose dictionary or plain encoding for the file.
type cardSample struct {
	n    int
	seen map[string]struct{}
}

// sampleSize is how many values per column pass 1 samples.
const sampleSize = 1024

func (c *cardSample) add(v []byte) {
	if c.n >= sampleSize {
		return
	}
	c.n++
	if _, ok := c.seen[string(v)]; !ok {
		c.seen[string(v)] = struct{}{}
	}
}

// dictionary reports whether dictionary encoding pays: at most half the
// sampled values are distinct (or there are too few to tell).
func (c *cardSample) dictionary() bool {
	return !c.decided() || 2*len(c.seen) <= c.n
}

// decided reports whether the sample has enough values to tell.
func (c *cardSample) decided() bool { return c != nil && c.n >= 16 }

type pendingCol struct {
	name string
	typ  string
}

// pqState is the per-encode state.
type pqState struct {
	e       *Parquet
	stats   Stats
	cols    []schema.Column // table columns (snapshot, then after add)
	byName  map[string]int  // column name → index in cols
	keys    map[string]*keyRef
	samples map[string]*cardSample // by column name
	pos     []posEntry             // last key seen at each position of a record
	pending []pendingCol
	pendBy  map[string]int
	present []bool
	sorted  bool
	lastT   event.Time
	dict    []bool // by table column: the plan's encodings (one pass), else nil
	missed  bool   // one pass: a key outside the plan was seen

	// pass 2
	fileOf    []int32 // table column → file column, or -1
	ftypes    []colType
	leaf      []int // file column → first leaf column index
	ovLeaf    int
	slots     []parquet.Value
	stamp     []uint32
	maps      []mapRef // map values of the current row
	entries   []kv
	overflow  []kv
	gen       uint32
	arena     arena.Arena
	scratch   []byte
	vals      [][]parquet.Value // values of the batch, per leaf column
	batchRows int
}

type kv struct {
	k, v  []byte
	vnull bool
}

type mapRef struct {
	fc         int
	start, end int // into entries
}

// Encode implements Encoder.
func (e *Parquet) Encode(ctx context.Context, c delivery.Chunk, w io.Writer, twoPass bool) (Stats, error) {
	cols, _ := e.store.Snapshot()
	st := &pqState{e: e, keys: map[string]*keyRef{}, samples: map[string]*cardSample{}, pendBy: map[string]int{}, arena: arena.New(arenaBlock, rowGroupBytes)}
	st.setColumns(cols)

	if p := e.currentPlan(); p != nil && !twoPass {
		st.dict = make([]bool, len(cols))
		for i := range min(len(p.present), len(cols)) {
			st.present[i], st.dict[i] = p.present[i], p.dict[i]
		}
		stats, err := st.write(ctx, c, w)
		if err == nil {
			e.widenPlan(st) // the encodings sampled in this pass
		}
		return stats, err
	}

	// Pass 1: keys, types, presence, order.
	st.sorted = true
	n := 0
	err := c.Scan(func(tag string, t event.Time, rec []byte) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if t < st.lastT {
			st.sorted = false
		}
		st.lastT = t
		st.inspect(rec)
		return nil
	})
	if err != nil {
		return st.stats, fmt.Errorf("read chunk: %w", err)
	}
	if err := st.addPending(); err != nil {
		return st.stats, err
	}
	stats, err := st.write(ctx, c, w)
	if err == nil {
		e.widenPlan(st)
	}
	return stats, err
}

// write is pass 2: the file with the columns st marks present.
func (st *pqState) write(ctx context.Context, c delivery.Chunk, w io.Writer) (Stats, error) {
	e := st.e
	var err error
	schema := st.fileSchema()
	pw := parquet.NewGenericWriter[any](w, schema,
		parquet.Compression(e.codec),
		parquet.DataPageVersion(1),
		parquet.DataPageStatistics(true),
		parquet.DictionaryMaxBytes(dictionaryMaxBytes),
		parquet.CreatedBy("maruta", "", ""),
	)
	wr := rowWriter{st: st, pw: pw, ctx: ctx, rowGroupRows: e.rowGroupRows}
	sort := !e.sortKey.none() && !(st.sorted && e.sortKey.timeOnly())
	if sort && !e.unsorted.Load() {
		in, err := inSortOrder(c, e.sortKey)
		if err != nil {
			return st.stats, fmt.Errorf("read chunk: %w", err)
		}
		sort = !in
	}
	if sort {
		var in bool
		in, err = sortedScan(c, e.sortKey, e.tmpDir, e.rowGroupRows, wr.add)
		e.unsorted.Store(!in)
	} else {
		err = c.Scan(func(tag string, t event.Time, rec []byte) error { return wr.add(t, rec) })
	}
	if err == nil {
		err = wr.flushBatch()
	}
	if st.missed {
		return st.stats, ErrPlanMiss
	}
	if err != nil {
		return st.stats, fmt.Errorf("encode parquet: %w", err)
	}
	if err := pw.Close(); err != nil {
		return st.stats, fmt.Errorf("encode parquet: %w", err)
	}
	return st.stats, nil
}

func (st *pqState) setColumns(cols []schema.Column) {
	st.cols = cols
	st.byName = make(map[string]int, len(cols))
	for i, c := range cols {
		st.byName[c.Name] = i
	}
	if len(st.present) < len(cols) {
		st.present = append(st.present, make([]bool, len(cols)-len(st.present))...)
	}
}

// inspect is pass 1 for one record.
func (st *pqState) inspect(rec []byte) {
	n, b, err := msgpack.ReadMapHeader(rec)
	if err != nil {
		return // counted in pass 2
	}
	for i := 0; i < n; i++ {
		var k, v []byte
		if t := msgpack.Peek(b); t == msgpack.Str || t == msgpack.Bin {
			k, _, b, err = msgpack.ReadBytes(b)
		} else {
			_, b, err = msgpack.ReadRaw(b, maxDepth)
			k = nil
		}
		if err != nil {
			return
		}
		if v, b, err = msgpack.ReadRaw(b, maxDepth); err != nil {
			return
		}
		if k == nil {
			continue
		}
		ref := st.ref(i, k)
		if ref.sample != nil && ref.sample.n < sampleSize {
			ref.sample.add(v)
		}
		switch {
		case ref.col >= 0:
			st.present[ref.col] = true
		case ref.pending >= 0:
			if p := &st.pending[ref.pending]; p.typ == "" {
				p.typ = inferType(v)
			}
		}
	}
}

// ref returns what key k (the i-th of its record) maps to, resolving a new
// key. Records of one source repeat their keys in the same order, so the
// last key seen at each position is checked before the map.
func (st *pqState) ref(i int, k []byte) *keyRef {
	if i < len(st.pos) {
		if e := &st.pos[i]; e.ref != nil && e.key == string(k) {
			return e.ref
		}
	}
	ref := st.keys[string(k)]
	if ref == nil {
		ref = st.resolve(string(k))
		st.keys[string(k)] = ref
	}
	if i < 64 {
		for len(st.pos) <= i {
			st.pos = append(st.pos, posEntry{})
		}
		st.pos[i] = posEntry{key: string(k), ref: ref}
	}
	return ref
}

type posEntry struct {
	key string
	ref *keyRef
}

// resolve maps a new key to a column, a pending column or the overflow.
func (st *pqState) resolve(key string) *keyRef {
	name, ok := st.e.store.ColumnFor(key)
	if !ok {
		return &keyRef{col: -1, pending: -1, reason: ReasonInvalidName}
	}
	sample := st.samples[name]
	if sample == nil {
		sample = &cardSample{seen: map[string]struct{}{}}
		st.samples[name] = sample
	}
	if i, ok := st.byName[name]; ok {
		return &keyRef{col: int32(i), pending: -1, sample: sample}
	}
	if st.e.declared {
		return &keyRef{col: -1, pending: -1, reason: ReasonUndeclared}
	}
	p, ok := st.pendBy[name]
	if !ok {
		p = len(st.pending)
		st.pending = append(st.pending, pendingCol{name: name})
		st.pendBy[name] = p
	}
	return &keyRef{col: -1, pending: int32(p), sample: sample}
}

// addPending adds the inferred columns to the table and resolves the keys
// that waited for them.
func (st *pqState) addPending() error {
	var add []schema.Column
	for _, p := range st.pending {
		if p.typ != "" {
			add = append(add, schema.Column{Name: p.name, Type: p.typ})
		}
	}
	if len(add) > 0 {
		cols, added, err := st.e.store.Add(add)
		if err != nil {
			return err
		}
		st.stats.ColsAdded = added
		st.setColumns(cols)
	}
	for _, ref := range st.keys {
		if ref.pending < 0 {
			continue
		}
		p := st.pending[ref.pending]
		ref.pending = -1
		if i, ok := st.byName[p.name]; ok {
			ref.col = int32(i)
			st.present[i] = true
		} else if p.typ == "" {
			ref.col = -2
		} else {
			ref.col, ref.reason = -1, ReasonColumnLimit
		}
	}
	return nil
}

// inferType returns the column type for a value, "" for nil.
func inferType(v []byte) string {
	switch msgpack.Peek(v) {
	case msgpack.Str, msgpack.Bin:
		return schema.TypeString
	case msgpack.Int:
		return schema.TypeBigint
	case msgpack.Float:
		return schema.TypeDouble
	case msgpack.Bool:
		return schema.TypeBoolean
	case msgpack.Map, msgpack.Array:
		return schema.TypeJSON
	case msgpack.Ext:
		if typ, data, _, err := msgpack.ReadExt(v); err == nil && typ == 0 && len(data) == 8 {
			return schema.TypeTimestamp
		}
		return schema.TypeJSON
	}
	return ""
}

// fileSchema builds the Parquet schema of this file and the leaf layout.
func (st *pqState) fileSchema() *parquet.Schema {
	fields := []parquet.Field{field(schema.TimeColumn, parquet.Encoded(parquet.Timestamp(parquet.Millisecond), &parquet.Plain))}
	st.fileOf = make([]int32, len(st.cols))
	leaf := 1
	for i, c := range st.cols {
		st.fileOf[i] = -1
		if !st.present[i] {
			continue
		}
		st.fileOf[i] = int32(len(st.ftypes))
		ct := colTypeOf(c.Type)
		st.ftypes = append(st.ftypes, ct)
		st.leaf = append(st.leaf, leaf)
		var dict bool
		if st.dict != nil { // one pass: the plan's
			dict = st.dict[i]
		} else {
			dict = st.samples[c.Name].dictionary()
		}
		fields = append(fields, field(c.Name, nodeOf(ct, dict)))
		if ct == ctMap {
			leaf += 2
		} else {
			leaf++
		}
	}
	st.ovLeaf = leaf
	st.vals = make([][]parquet.Value, leaf+2)
	fields = append(fields, field(st.e.overflow, nodeOf(ctMap, false)))
	st.slots = make([]parquet.Value, len(st.ftypes))
	st.stamp = make([]uint32, len(st.ftypes))
	return parquet.NewSchema("maruta", orderedGroup(fields))
}

// nodeOf returns the Parquet node of a column type; strings and integers
// are dictionary encoded when dict is true.
func nodeOf(ct colType, dict bool) parquet.Node {
	// PLAIN, not parquet-go's default DELTA_LENGTH_BYTE_ARRAY for strings:
	// every Parquet reader knows it, and zstd compresses it better.
	enc := func(n parquet.Node) parquet.Node {
		if dict {
			return parquet.Encoded(n, &parquet.RLEDictionary)
		}
		return parquet.Encoded(n, &parquet.Plain)
	}
	switch ct {
	case ctBigint:
		return parquet.Optional(enc(parquet.Int(64)))
	case ctInt:
		return parquet.Optional(enc(parquet.Int(32)))
	case ctDouble:
		return parquet.Optional(parquet.Leaf(parquet.DoubleType))
	case ctBool:
		return parquet.Optional(parquet.Leaf(parquet.BooleanType))
	case ctTimestamp:
		return parquet.Optional(enc(parquet.Timestamp(parquet.Millisecond)))
	case ctMap:
		str := parquet.Encoded(parquet.String(), &parquet.Plain)
		return parquet.Optional(parquet.Map(str, parquet.Optional(str)))
	}
	return parquet.Optional(enc(parquet.String()))
}

// rowWriter is pass 2: records in, rows out to parquet-go.
type rowWriter struct {
	st           *pqState
	pw           *parquet.GenericWriter[any]
	ctx          context.Context
	rowGroupRows int
	groupRows    int
	groupBytes   int64
	n            int
}

func (wr *rowWriter) add(t event.Time, rec []byte) error {
	st := wr.st
	if wr.n++; wr.n%4096 == 0 {
		if err := wr.ctx.Err(); err != nil {
			return err
		}
	}
	st.stats.InputBytes += int64(len(rec))
	if !st.appendRow(t, rec) {
		if st.missed {
			return ErrPlanMiss
		}
		st.stats.Invalid++
		return nil
	}
	st.stats.Rows++
	wr.groupRows++
	wr.groupBytes += int64(len(rec))
	if st.batchRows >= rowBatch {
		if err := wr.flushBatch(); err != nil {
			return err
		}
	}
	if wr.groupRows >= wr.rowGroupRows || wr.groupBytes >= rowGroupBytes {
		if err := wr.flushBatch(); err != nil {
			return err
		}
		if err := wr.pw.Flush(); err != nil {
			return err
		}
		wr.groupRows, wr.groupBytes = 0, 0
	}
	return nil
}

// flushBatch hands the batch to parquet-go, column by column (each column
// gets whole rows, so pages never split a row).
func (wr *rowWriter) flushBatch() error {
	st := wr.st
	if st.batchRows == 0 {
		return nil
	}
	cws := wr.pw.ColumnWriters()
	var err error
	for leaf, vals := range st.vals {
		if err == nil {
			_, err = cws[leaf].WriteRowValues(vals)
		}
		clear(vals)
		st.vals[leaf] = vals[:0]
	}
	st.batchRows = 0
	st.arena.Reset()
	return err
}

// appendRow converts one record into a row of the batch (st.cols). It returns
// false for a record that is not a well-formed msgpack map.
func (st *pqState) appendRow(t event.Time, rec []byte) bool {
	if msgpack.Peek(rec) != msgpack.Map {
		return false
	}
	rec = st.arena.Copy(rec)
	st.gen++
	if st.gen == 0 { // wrapped: reset stamps
		clear(st.stamp)
		st.gen = 1
	}
	st.maps = st.maps[:0]
	st.entries = st.entries[:0]
	st.overflow = st.overflow[:0]

	n, b, err := msgpack.ReadMapHeader(rec)
	if err != nil {
		return false
	}
	for i := 0; i < n; i++ {
		var k, v []byte
		stringKey := false
		if tk := msgpack.Peek(b); tk == msgpack.Str || tk == msgpack.Bin {
			k, _, b, err = msgpack.ReadBytes(b)
			stringKey = true
		} else {
			k, b, err = msgpack.ReadRaw(b, maxDepth)
		}
		if err != nil {
			return false
		}
		// ReadRaw checks the whole value, so converting it cannot fail on
		// malformed bytes.
		if v, b, err = msgpack.ReadRaw(b, maxDepth); err != nil {
			return false
		}
		if !stringKey {
			txt := st.text(k)
			st.toOverflow(ReasonInvalidName, txt, v)
			continue
		}
		ref := st.ref(i, k)
		switch {
		case ref.col == -2 || msgpack.Peek(v) == msgpack.Nil:
			continue
		case ref.pending >= 0: // one pass: a new column
			st.missed = true
			return false
		case ref.col == -1:
			st.toOverflow(ref.reason, st.utf8(k), v)
			continue
		}
		fc := st.fileOf[ref.col]
		if fc < 0 && st.dict != nil { // one pass: a column outside the plan
			st.missed = true
			return false
		}
		if fc < 0 {
			st.toOverflow(ReasonUndeclared, st.utf8(k), v)
			continue
		}
		if st.stamp[fc] == st.gen {
			st.toOverflow(ReasonDuplicate, st.utf8(k), v)
			continue
		}
		switch st.setValue(int(fc), v) {
		case fitNo:
			st.toOverflow(ReasonTypeConflict, st.utf8(k), v)
			st.stats.addMismatch(st.cols[ref.col].Name, MismatchOverflow)
			continue
		case fitCoerced:
			st.stats.addMismatch(st.cols[ref.col].Name, MismatchCoerced)
		}
		st.stamp[fc] = st.gen
		if st.dict != nil && ref.sample != nil && ref.sample.n < sampleSize {
			ref.sample.add(v) // one pass: sample for the next file's encoding
		}
	}

	// Emit the row: time, file columns, overflow, in leaf order.
	st.vals[0] = append(st.vals[0], parquet.Int64Value(t.UnixMilli()).Level(0, 0, 0))
	for fc, ct := range st.ftypes {
		leaf := st.leaf[fc]
		if ct == ctMap {
			if st.stamp[fc] != st.gen {
				st.vals[leaf] = append(st.vals[leaf], parquet.NullValue().Level(0, 0, leaf))
				st.vals[leaf+1] = append(st.vals[leaf+1], parquet.NullValue().Level(0, 0, leaf+1))
				continue
			}
			for _, m := range st.maps {
				if m.fc == fc {
					st.appendMap(leaf, st.entries[m.start:m.end])
				}
			}
			continue
		}
		if st.stamp[fc] == st.gen {
			st.vals[leaf] = append(st.vals[leaf], st.slots[fc].Level(0, 1, leaf))
		} else {
			st.vals[leaf] = append(st.vals[leaf], parquet.NullValue().Level(0, 0, leaf))
		}
	}
	if len(st.overflow) == 0 {
		st.vals[st.ovLeaf] = append(st.vals[st.ovLeaf], parquet.NullValue().Level(0, 0, st.ovLeaf))
		st.vals[st.ovLeaf+1] = append(st.vals[st.ovLeaf+1], parquet.NullValue().Level(0, 0, st.ovLeaf+1))
	} else {
		st.appendMap(st.ovLeaf, st.overflow)
	}
	st.batchRows++
	return true
}

// appendMap appends the two leaf columns of a map<string,string> value:
// all keys, then all values (values of a row are ordered by column).
func (st *pqState) appendMap(leaf int, es []kv) {
	if len(es) == 0 { // empty map: present, no entries
		st.vals[leaf] = append(st.vals[leaf], parquet.NullValue().Level(0, 1, leaf))
		st.vals[leaf+1] = append(st.vals[leaf+1], parquet.NullValue().Level(0, 1, leaf+1))
		return
	}
	for i, e := range es {
		rep := 1
		if i == 0 {
			rep = 0
		}
		st.vals[leaf] = append(st.vals[leaf], parquet.ByteArrayValue(e.k).Level(rep, 2, leaf))
	}
	for i, e := range es {
		rep := 1
		if i == 0 {
			rep = 0
		}
		if e.vnull {
			st.vals[leaf+1] = append(st.vals[leaf+1], parquet.NullValue().Level(rep, 2, leaf+1))
		} else {
			st.vals[leaf+1] = append(st.vals[leaf+1], parquet.ByteArrayValue(e.v).Level(rep, 3, leaf+1))
		}
	}
}

// fit is how a value fits its column.
type fit uint8

const (
	fitOK      fit = iota
	fitCoerced     // kept in the column, converted without loss
	fitNo          // does not fit: the value goes to the overflow column
)

// setValue converts v for file column fc into st.slots (or st.maps). Apps
// disagree on types (one writes level as text, another as a number), so
// what converts without loss is kept in the column: a number or a boolean
// in a string column as its JSON text, an integer in a double column when
// the double holds it exactly.
func (st *pqState) setValue(fc int, v []byte) fit {
	switch st.ftypes[fc] {
	case ctString:
		switch msgpack.Peek(v) {
		case msgpack.Str, msgpack.Bin:
			s, _, _, _ := msgpack.ReadBytes(v)
			st.slots[fc] = parquet.ByteArrayValue(st.utf8(s))
		case msgpack.Int, msgpack.Float, msgpack.Bool:
			st.slots[fc] = parquet.ByteArrayValue(st.json(v))
			return fitCoerced
		default:
			return fitNo
		}
	case ctJSON:
		st.slots[fc] = parquet.ByteArrayValue(st.json(v))
	case ctBigint:
		if msgpack.Peek(v) != msgpack.Int {
			return fitNo
		}
		x, _, err := msgpack.ReadInt(v)
		if err != nil { // uint64 above MaxInt64
			return fitNo
		}
		st.slots[fc] = parquet.Int64Value(x)
	case ctInt:
		if msgpack.Peek(v) != msgpack.Int {
			return fitNo
		}
		x, _, err := msgpack.ReadInt(v)
		if err != nil || x < math.MinInt32 || x > math.MaxInt32 {
			return fitNo
		}
		st.slots[fc] = parquet.Int32Value(int32(x))
	case ctDouble:
		switch msgpack.Peek(v) {
		case msgpack.Float:
			f, _, _ := msgpack.ReadFloat(v)
			st.slots[fc] = parquet.DoubleValue(f)
		case msgpack.Int:
			x, _, err := msgpack.ReadInt(v)
			if err != nil || x > 1<<53 || x < -(1<<53) {
				return fitNo // not exact as a double
			}
			st.slots[fc] = parquet.DoubleValue(float64(x))
			return fitCoerced
		default:
			return fitNo
		}
	case ctBool:
		x, _, err := msgpack.ReadBool(v)
		if err != nil {
			return fitNo
		}
		st.slots[fc] = parquet.BooleanValue(x)
	case ctTimestamp:
		ms, ok := timestampMillis(v)
		if !ok {
			return fitNo
		}
		st.slots[fc] = parquet.Int64Value(ms)
	case ctMap:
		n, b, err := msgpack.ReadMapHeader(v)
		if err != nil {
			return fitNo
		}
		start := len(st.entries)
		for i := 0; i < n; i++ {
			var k, x []byte
			k, b, _ = msgpack.ReadRaw(b, maxDepth)
			x, b, _ = msgpack.ReadRaw(b, maxDepth)
			e := kv{k: st.text(k)}
			if msgpack.Peek(x) == msgpack.Nil {
				e.vnull = true
			} else {
				e.v = st.text(x)
			}
			st.entries = append(st.entries, e)
		}
		st.maps = append(st.maps, mapRef{fc: fc, start: start, end: len(st.entries)})
	}
	return fitOK
}

// timestampMillis reads an EventTime ext or an RFC 3339 string as
// milliseconds since the epoch.
func timestampMillis(v []byte) (int64, bool) {
	switch msgpack.Peek(v) {
	case msgpack.Ext:
		typ, data, _, err := msgpack.ReadExt(v)
		if err != nil || typ != 0 || len(data) != 8 {
			return 0, false
		}
		sec := int64(uint32(data[0])<<24 | uint32(data[1])<<16 | uint32(data[2])<<8 | uint32(data[3]))
		nsec := int64(uint32(data[4])<<24 | uint32(data[5])<<16 | uint32(data[6])<<8 | uint32(data[7]))
		return event.FromUnix(sec, nsec).UnixMilli(), true
	case msgpack.Str:
		s, _, _ := msgpack.ReadStr(v)
		t, err := time.Parse(time.RFC3339Nano, string(s))
		if err != nil {
			return 0, false
		}
		return t.UnixMilli(), true
	}
	return 0, false
}

// toOverflow keeps a value that has no column as text under its key.
func (st *pqState) toOverflow(reason string, key, v []byte) {
	st.stats.addOverflow(reason, key)
	e := kv{k: key}
	if msgpack.Peek(v) == msgpack.Nil {
		e.vnull = true
	} else {
		e.v = st.text(v)
	}
	st.overflow = append(st.overflow, e)
}

// text renders a value as text: strings as themselves (valid UTF-8),
// anything else as JSON. The result lives in the batch arena.
func (st *pqState) text(v []byte) []byte {
	if t := msgpack.Peek(v); t == msgpack.Str || t == msgpack.Bin {
		s, _, _, _ := msgpack.ReadBytes(v)
		return st.utf8(s)
	}
	return st.json(v)
}

// json renders a value as JSON text in the arena.
func (st *pqState) json(v []byte) []byte {
	out, _, inv, err := msgpack.AppendJSON(st.scratch[:0], v, maxDepth)
	if err != nil {
		out = append(st.scratch[:0], "null"...)
	}
	st.scratch = out
	st.stats.InvalidUTF8 += int64(inv)
	return st.arena.Copy(out)
}

// utf8 returns s, or a copy in the arena with invalid UTF-8 replaced by
// U+FFFD (counted). s must already live in the arena or the record copy.
func (st *pqState) utf8(s []byte) []byte {
	if utf8.Valid(s) {
		return s
	}
	out := st.scratch[:0]
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
			st.stats.InvalidUTF8++
		} else {
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	st.scratch = out
	return st.arena.Copy(out)
}

// orderedGroup is a Parquet group whose fields keep the order given (a
// parquet.Group sorts them by name): time first, then the table's columns
// in the order they were added, then the overflow column.
type orderedGroup []parquet.Field

func (g orderedGroup) ID() int                     { return 0 }
func (g orderedGroup) String() string              { return parquet.Group{}.String() }
func (g orderedGroup) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool              { return false }
func (g orderedGroup) Repeated() bool              { return false }
func (g orderedGroup) Required() bool              { return true }
func (g orderedGroup) Leaf() bool                  { return false }
func (g orderedGroup) Fields() []parquet.Field     { return g }
func (g orderedGroup) Encoding() encoding.Encoding { return nil }
func (g orderedGroup) Compression() compress.Codec { return nil }
func (g orderedGroup) GoType() reflect.Type        { return reflect.TypeFor[map[string]any]() }

type namedField struct {
	parquet.Node
	name string
}

func (f namedField) Name() string                           { return f.name }
func (f namedField) Value(base reflect.Value) reflect.Value { return reflect.Value{} }

func field(name string, n parquet.Node) parquet.Field { return namedField{n, name} }
