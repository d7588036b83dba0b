package msgpack

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"regexp"
	"strings"
	"testing"

	vm "github.com/vmihailenco/msgpack/v5"
)

// decodeOracle decodes msgpack with the reference library, keeping map order
// out of the picture (maps become map[string]any).
func decodeOracle(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	dec := vm.NewDecoder(bytes.NewReader(b))
	dec.SetMapDecoder(func(d *vm.Decoder) (any, error) { return d.DecodeUntypedMap() })
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("reference decoder rejects %x: %v", b, err)
	}
	return normalize(v)
}

func normalize(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := map[string]any{}
		for k, e := range x {
			m[k.(string)] = normalize(e)
		}
		return m
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
		return x
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
		return x
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return x
	case float32:
		return float64(x)
	}
	return v
}

// fromEncodingJSON decodes JSON with the standard library into the same
// shapes (numbers as int64, uint64 or float64).
func fromEncodingJSON(t testing.TB, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("encoding/json rejects %q: %v", s, err)
	}
	var conv func(v any) any
	conv = func(v any) any {
		switch x := v.(type) {
		case json.Number:
			if i, err := x.Int64(); err == nil {
				return i
			}
			var u uint64
			if err := json.Unmarshal([]byte(x), &u); err == nil && !strings.ContainsAny(string(x), ".eE") {
				return u
			}
			f, _ := x.Float64()
			return f
		case map[string]any:
			for k, e := range x {
				x[k] = conv(e)
			}
			return x
		case []any:
			for i := range x {
				x[i] = conv(x[i])
			}
			return x
		}
		return v
	}
	return conv(v)
}

func TestAppendFromJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`{}`, `[]`, `0`, `-0`, `1`, `-1`, `127`, `128`, `-32`, `-33`, `255`, `256`, `65535`, `65536`,
		`4294967295`, `4294967296`, `-2147483649`, `9223372036854775807`, `-9223372036854775808`,
		`18446744073709551615`, `1.5`, `-0.25`, `1e3`, `1E-3`, `2.5e+10`, `true`, `false`, `null`,
		`"plain"`, `"esc \" \\ \/ \b \f \n \r \t"`, `"\u00e9\u65e5\ud83d\ude00"`,
		`{"a":1,"b":[1,2,{"c":null}],"d":"x"}`,
		` { "ws" : [ 1 , 2 ] } `,
		`{"log":"GET /index.html 200","level":"info","status":200,"latency_ms":12.5,"user":{"id":42,"tags":["a","b"]}}`,
		`[` + strings.Repeat(`1,`, 20) + `1]`,
		`{` + strings.Repeat(`"k":0,`, 0) + `"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"a10":10,"a11":11,"a12":12,"a13":13,"a14":14,"a15":15,"a16":16,"a17":17}`,
		`"` + strings.Repeat("x", 40) + `"`,
		`"` + strings.Repeat("\\n", 40) + `"`,
		`"` + strings.Repeat("y", 300) + `\t"`,
		`"` + strings.Repeat("z", 70000) + `"`,
	} {
		got, err := AppendFromJSON(nil, []byte(s), 100)
		if err != nil {
			t.Errorf("%.60q: %v", s, err)
			continue
		}
		if n, err := Skip(got, 100); err != nil || n != len(got) {
			t.Errorf("%.60q: output is not one msgpack value: n=%d err=%v", s, n, err)
			continue
		}
		want := fromEncodingJSON(t, s)
		if g := decodeOracle(t, got); !reflect.DeepEqual(g, want) {
			t.Errorf("%.60q:\n got %#v\nwant %#v", s, g, want)
		}
	}
}

func TestAppendFromJSONExact(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []byte
	}{
		// 2^64+1 stays exact as text, never a float.
		{`18446744073709551617`, AppendString(nil, "18446744073709551617")},
		{`-9223372036854775809`, AppendString(nil, "-9223372036854775809")},
		{`{"id":123456789012345678901234567890}`, AppendString(AppendString(AppendMapHeader(nil, 1), "id"), "123456789012345678901234567890")},
		{`18446744073709551615`, AppendUint(nil, math.MaxUint64)},
		{`1e400`, AppendString(nil, "1e400")},
		// Duplicate keys: first position, last value (Ruby Hash).
		{`{"a":1,"b":2,"a":3}`, AppendInt(AppendString(AppendInt(AppendString(AppendMapHeader(nil, 2), "a"), 3), "b"), 2)},
		// Invalid UTF-8 bytes survive; a lone surrogate becomes U+FFFD.
		{"\"\xff\xfe\"", AppendString(nil, "\xff\xfe")},
		{`"\ud800x"`, AppendString(nil, "\uFFFDx")},
		{`"\ud83d\ude00"`, AppendString(nil, "😀")},
		{`[]`, []byte{0x90}},
		{`{}`, []byte{0x80}},
	} {
		got, err := AppendFromJSON(nil, []byte(c.in), 100)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s:\n got %x\nwant %x", c.in, got, c.want)
		}
	}
}

func TestAppendFromJSONRejects(t *testing.T) {
	for _, s := range []string{
		``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `'x'`, `"abc`, `"\x"`, `"\u12"`,
		`01`, `1.`, `.5`, `-`, `1e`, `+1`, `NaN`, `Infinity`, `tru`, `nul`, `{} x`, `[1] [2]`,
		`{"a":1}}`, strings.Repeat("[", 101) + strings.Repeat("]", 101),
	} {
		prefix := []byte{1, 2, 3}
		got, err := AppendFromJSON(prefix, []byte(s), 100)
		if err == nil {
			t.Errorf("%q: accepted as %x", s, got)
			continue
		}
		if !errors.Is(err, ErrJSON) {
			t.Errorf("%q: error %v does not wrap ErrJSON", s, err)
		}
		if !bytes.Equal(got, prefix) {
			t.Errorf("%q: dst not restored: %x", s, got)
		}
	}
	if _, err := AppendFromJSON(nil, []byte(strings.Repeat("[", 100)+strings.Repeat("]", 100)), 100); err != nil {
		t.Errorf("depth 100 rejected: %v", err)
	}
}

// longNumber finds integers that may exceed int64 (they become strings).
var longNumber = regexp.MustCompile(`[0-9]{16}|[eE]`)

func FuzzAppendFromJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x",null,true]}`, `"\u00e9"`, `18446744073709551617`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := AppendFromJSON(nil, in, 50)
		if err != nil {
			return
		}
		if n, err := Skip(got, 60); err != nil || n != len(got) {
			t.Fatalf("%q: output is not one msgpack value: %x (n=%d, err=%v)", in, got, n, err)
		}
		if json.Valid(in) && !bytes.Contains(in, []byte(`\u`)) {
			// Round trip through the msgpack→JSON converter must decode to
			// the same value encoding/json sees (ignoring duplicate keys).
			back, _, _, err := AppendJSON(nil, got, 60)
			if err != nil {
				t.Fatalf("%q: AppendJSON: %v", in, err)
			}
			var a, b any
			if json.Unmarshal(in, &a) == nil && json.Unmarshal(back, &b) == nil && !reflect.DeepEqual(a, b) && !longNumber.Match(in) {
				t.Fatalf("%q: round trip %q", in, back)
			}
		}
	})
}

func BenchmarkAppendFromJSON(b *testing.B) {
	line := []byte(`{"time":"2026-11-22T13:04:05.123Z","level":"info","log_type":"EVENT","event_type":"purchase","user_id":1234567,"amount":19.99,"msg":"user bought \"widget\"","tags":["a","b"]}`)
	var dst []byte
	var c JSONConverter
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var err error
		dst, err = c.Append(dst[:0], line, 100)
		if err != nil {
			b.Fatal(err)
		}
	}
}
