package athena

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/marutalog/maruta/sinks/schema"
)

// SampleColumns reads the schema in the footer of every Parquet file under
// dir (only footers: no data pages) and returns their columns with Athena
// types, in the order of first appearance (files in name order). The time
// column, and columns maruta never writes (nested groups other than a map
// of strings), are left out. A column with two types in two files keeps the
// first and is reported in conflicts.
func SampleColumns(dir string) (cols []schema.Column, conflicts []string, err error) {
	var files []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sample %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("sample %s: no .parquet files", dir)
	}
	sort.Strings(files)
	types := map[string]string{}
	for _, file := range files {
		fileCols, err := parquetColumns(file)
		if err != nil {
			return nil, nil, fmt.Errorf("sample: %w", err)
		}
		for _, c := range fileCols {
			prev, seen := types[c.Name]
			switch {
			case !seen:
				types[c.Name] = c.Type
				cols = append(cols, c)
			case prev != c.Type:
				conflicts = append(conflicts, fmt.Sprintf("%s is %s in %s, %s before", c.Name, c.Type, file, prev))
			}
		}
	}
	return cols, conflicts, nil
}

// parquetColumns returns the top-level columns of one file's schema.
func parquetColumns(file string) ([]schema.Column, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var cols []schema.Column
	for _, field := range pf.Schema().Fields() {
		if field.Name() == schema.TimeColumn {
			continue
		}
		if typ := athenaTypeOf(field); typ != "" {
			cols = append(cols, schema.Column{Name: field.Name(), Type: typ})
		}
	}
	return cols, nil
}

// athenaTypeOf is the schema type of a Parquet column as maruta writes
// them, or "" for a column it does not know.
func athenaTypeOf(n parquet.Node) string {
	var logical any
	if lt := n.Type().LogicalType(); lt != nil {
		logical = lt.Value
	}
	if !n.Leaf() {
		if _, ok := logical.(*format.MapType); ok {
			return schema.TypeMap
		}
		return ""
	}
	switch n.Type().Kind() {
	case parquet.Boolean:
		return schema.TypeBoolean
	case parquet.Int32:
		if _, ok := logical.(*format.DateType); ok {
			return ""
		}
		return schema.TypeInt
	case parquet.Int64:
		if _, ok := logical.(*format.TimestampType); ok {
			return schema.TypeTimestamp
		}
		return schema.TypeBigint
	case parquet.Float, parquet.Double:
		return schema.TypeDouble
	case parquet.ByteArray:
		return schema.TypeString
	}
	return ""
}
