package msgpack

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	vm "github.com/vmihailenco/msgpack/v5"
)

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, true, false, 0, -1, 127, -33, 65536, int64(math.MinInt64), int64(math.MaxInt64),
		uint64(math.MaxUint64), 1.5, -0.000001, 1e21, 123456789.125, float32(2.5), "", "plain",
		"quote\" back\\ nl\n tab\t cr\r ctl\x01 \x1f", "日本語 ✓ 😀", "<html>&amp;",
		[]any{}, []any{1, "a", nil, []any{true}}, map[string]any{},
		map[string]any{"a": 1, "b": []any{map[string]any{"c": "d"}}, "e": nil, "f": 2.25},
	}
	for _, v := range values {
		b := oracle(t, v)
		got, rest, inv, err := AppendJSON([]byte("x"), append(b, 0xc0), 10)
		if err != nil || inv != 0 || len(rest) != 1 || got[0] != 'x' {
			t.Fatalf("AppendJSON(%#v) = %q, rest %d, invalid %d, %v", v, got, len(rest), inv, err)
		}
		var gotV, wantV any
		if err := json.Unmarshal(got[1:], &gotV); err != nil {
			t.Fatalf("AppendJSON(%#v) = %q: not JSON: %v", v, got[1:], err)
		}
		want, _ := json.Marshal(v)
		_ = json.Unmarshal(want, &wantV)
		if !reflect.DeepEqual(gotV, wantV) {
			t.Errorf("AppendJSON(%#v) = %s, want %s", v, got[1:], want)
		}
	}
}

func TestAppendJSONExact(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
		inv  int
	}{
		{AppendInt(nil, math.MaxInt64), "9223372036854775807", 0},
		{AppendUint(nil, math.MaxUint64), "18446744073709551615", 0},
		{AppendFloat64(nil, math.NaN()), "null", 0},
		{AppendFloat64(nil, math.Inf(-1)), "null", 0},
		{AppendFloat64(nil, 1e-9), "1e-9", 0},
		{AppendString(nil, "a\xffb"), `"a` + "\ufffd" + `b"`, 1},
		{AppendBin(nil, []byte("bin\xfe")), `"bin` + "\ufffd" + `"`, 1},
		{AppendEventTime(nil, 1700000000, 500000000), "1700000000.5", 0},
		{AppendEventTime(nil, 1700000000, 0), "1700000000", 0},
		{AppendEventTime(nil, 1700000000, 123456789), "1700000000.123456789", 0},
		{AppendExt(nil, 5, []byte{1, 2, 3}), `"AQID"`, 0},
		// A map with non-string keys and an invalid UTF-8 key.
		{AppendInt(AppendString(AppendNil(AppendInt(AppendMapHeader(nil, 2), 7)), "k\xff"), 1), `{"7":null,"k` + "\ufffd" + `":1}`, 1},
		{AppendString(nil, "\u2028"), "\"\u2028\"", 0},
	} {
		got, _, inv, err := AppendJSON(nil, c.in, 10)
		if err != nil || string(got) != c.want || inv != c.inv {
			t.Errorf("AppendJSON(% x) = %s, %d, %v; want %s, %d", c.in, got, inv, err, c.want, c.inv)
		}
	}
}

func TestAppendJSONRejects(t *testing.T) {
	deep := append(bytes.Repeat([]byte{0x91}, 50), 0xc0)
	if _, _, _, err := AppendJSON(nil, deep, 10); err == nil {
		t.Error("deep nesting accepted")
	}
	if _, _, _, err := AppendJSON(nil, []byte{0x92, 0x01}, 10); err == nil {
		t.Error("short array accepted")
	}
}

func FuzzAppendJSON(f *testing.F) {
	seed, _ := vm.Marshal(map[string]any{"a": []any{1, "x", 2.5, nil}})
	f.Add(seed)
	f.Add([]byte{0xd7, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, _, _, err := AppendJSON(nil, b, 20)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q from % x", out, b)
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	rec, _ := vm.Marshal(map[string]any{
		"container_id": strings.Repeat("a", 64), "container_name": "/shop-api-1", "source": "stdout",
		"log": `{"level":"info","msg":"GET /api/items 200","latency_ms":12.5}`, "n": 12345,
	})
	var dst []byte
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		dst, _, _, _ = AppendJSON(dst[:0], rec, 10)
	}
}
