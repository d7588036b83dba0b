package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTestdata loads every testdata/*.yaml. The file's "# want:" comment
// lines (at the top, or at the end where they shift no line number) say
// what to expect: "# want: ok", or one "# want: <error line>" per error,
// in the order Parse reports them (by line).
func TestTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					want = append(want, w)
				}
			}
			if len(want) == 0 {
				t.Fatal("no '# want:' line")
			}
			_, err = Parse(filepath.Base(f), data, os.LookupEnv)
			if want[0] == "ok" {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want:\n%s", strings.Join(want, "\n"))
			}
			if got := err.Error(); got != strings.Join(want, "\n") {
				t.Errorf("error:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if c.Sources[0].Listen != "127.0.0.1:24224" {
		t.Errorf("default listen = %q", c.Sources[0].Listen)
	}
	if q := c.Sources[0].ShutdownQuiet.D(); q != time.Second {
		t.Errorf("default shutdown_quiet = %v", q)
	}
	if c.DataDir != "./maruta-data" {
		t.Errorf("default data_dir = %q", c.DataDir)
	}
	leaves := c.LeafOutputs()
	if len(leaves) != 1 || leaves[0].File == nil || leaves[0].File.Format != "parquet" {
		t.Fatalf("default output: %+v", leaves)
	}
	if p := leaves[0].File.Path; !strings.HasPrefix(p, "maruta-data/lake/") || !strings.HasSuffix(p, "/dt=%Y-%m-%d/hour=%H/") {
		t.Errorf("default lake path = %q", p)
	}
	if b := leaves[0].File.Buffer; b.Fsync != "always" || b.Timekey.D() != time.Hour || b.OverflowAction != "block" {
		t.Errorf("default buffer = %+v", b)
	}
}

func TestDefaultConfigEnv(t *testing.T) {
	env := map[string]string{"MARUTA_DATA_DIR": "/srv/m", "MARUTA_LISTEN": "0.0.0.0:24224"}
	c, err := Parse("<embedded>", DefaultYAML(), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/srv/m" || c.Sources[0].Listen != "0.0.0.0:24224" {
		t.Errorf("env not applied: data_dir %q listen %q", c.DataDir, c.Sources[0].Listen)
	}
	if got := c.LeafOutputs()[0].File.Buffer.Path; got != "/srv/m/buffer/lake" {
		t.Errorf("buffer path = %q", got)
	}
}

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"A": "x", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct{ in, out, err string }{
		{"a: ${A}\n", "a: x\n", ""},
		{"a: ${B:-def}\n", "a: def\n", ""},
		{"a: ${EMPTY:-def}\n", "a: def\n", ""},
		{"a: ${EMPTY}\n", "a: \n", ""},
		{"a: ${tag}/${tag_parts[1]}/${hostname}\n", "a: ${tag}/${tag_parts[1]}/${hostname}\n", ""},
		{"a: $${A}\n", "a: ${A}\n", ""},
		{"a: 1 # ${NOPE}\n", "a: 1 # ${NOPE}\n", ""},
		{"a: '#${A}'\n", "a: '#x'\n", ""},
		{"x: 1\na: ${NOPE}\n", "", ":2: environment variable NOPE is not set"},
	} {
		got, err := ExpandEnv([]byte(tc.in), lookup)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ExpandEnv(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.out {
			t.Errorf("ExpandEnv(%q) = %q, %v; want %q", tc.in, got, err, tc.out)
		}
	}
}

func TestUnits(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "8k": 8 << 10, "64MiB": 64 << 20, "128m": 128 << 20, "1GB": 1e9, "1.5g": 3 << 29} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]time.Duration{"60": time.Minute, "1.5": 1500 * time.Millisecond, "10s": 10 * time.Second, "1d": 24 * time.Hour, "1h30m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1s", "fast", "5q"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", bad)
		}
	}
	if s := FormatDuration(72 * time.Hour); s != "72h" {
		t.Errorf("FormatDuration(72h) = %q", s)
	}
}

func TestPathGranularity(t *testing.T) {
	for path, want := range map[string]time.Duration{
		"${tag}/dt=%Y-%m-%d/hour=%H/": time.Hour,
		"logs/%Y/%m/%d/":              24 * time.Hour,
		"logs/%Y%m%d%H%M/":            time.Minute,
		"logs/${tag}/":                0,
	} {
		if got := PathGranularity(path); got != want {
			t.Errorf("PathGranularity(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	data, err := os.ReadFile("testdata/ok-full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("ok-full.yaml", data, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse("marshalled", out, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("re-parse of marshalled config: %v\n%s", err, out)
	}
	out2, _ := Marshal(c2)
	if string(out) != string(out2) {
		t.Errorf("marshal is not stable:\n%s\n---\n%s", out, out2)
	}
}

func TestTargetFileSizeRaisesTheDefaultChunkLimit(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want int64
	}{
		{"  - {type: file, name: a}\n", 64 << 20},
		{"  - {type: file, name: a, target_file_size: 128MiB}\n", 1 << 30},                     // 16 × 128 MiB = 2 GiB, half the 2 GiB total
		{"  - {type: s3, name: a, bucket: b, region: r, target_file_size: 8MiB}\n", 128 << 20}, // 16 × 8 MiB
		{"  - {type: file, name: a, target_file_size: 1MiB}\n", 64 << 20},                      // never below the default
		{"  - {type: file, name: a, target_file_size: 128MiB, buffer: {chunk_limit_size: 300MiB}}\n", 300 << 20},
	} {
		cfg, err := Parse("t.yaml", []byte("data_dir: /tmp/x\nsources: [{type: forward}]\noutputs:\n"+tc.yaml), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if got := int64(cfg.Outputs[0].BufferConfig().ChunkLimitSize); got != tc.want {
			t.Errorf("%s: chunk_limit_size %d, want %d", tc.yaml, got, tc.want)
		}
	}
}

// TestParseWithOptions: what a command that reads part of the config, or
// treats unset variables as warnings, gets.
func TestParseWithOptions(t *testing.T) {
	y := []byte(`sources:
  - type: forward
    security: {shared_key: ${MARUTA_TEST_KEY}}
    max_depth: 1
outputs:
  - type: s3
    bucket: ${MARUTA_TEST_BUCKET}
    region: ${MARUTA_TEST_REGION}
    buffer: {fsync: sometimes}
`)
	none := func(string) (string, bool) { return "", false }
	for _, tc := range []struct {
		name     string
		o        Options
		errs     []string
		warnings []string
	}{
		{"run: every error", Options{}, []string{
			"t.yaml:3: sources[0].security.shared_key: environment variable MARUTA_TEST_KEY is not set",
			"t.yaml:4: sources[0].max_depth: must be at least 4",
			"t.yaml:7: outputs[0].bucket: environment variable MARUTA_TEST_BUCKET is not set",
			"t.yaml:8: outputs[0].region: environment variable MARUTA_TEST_REGION is not set",
			"t.yaml:9: outputs[0].buffer.fsync: \"sometimes\" is not one of always, interval, off"}, nil},
		{"validate: unset variables are warnings", Options{UnsetEnv: EnvWarning}, []string{
			"t.yaml:4: sources[0].max_depth: must be at least 4",
			"t.yaml:9: outputs[0].buffer.fsync: \"sometimes\" is not one of always, interval, off"}, []string{
			"t.yaml:3: sources[0].security.shared_key: environment variable MARUTA_TEST_KEY is not set",
			"t.yaml:7: outputs[0].bucket: environment variable MARUTA_TEST_BUCKET is not set",
			"t.yaml:8: outputs[0].region: environment variable MARUTA_TEST_REGION is not set"}},
		{"reads the bucket only", Options{Reads: []string{"outputs.bucket"}}, []string{
			"t.yaml:7: outputs[0].bucket: environment variable MARUTA_TEST_BUCKET is not set"}, nil},
		{"reads http only", Options{Reads: []string{"http"}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Lookup = none
			c, warnings, err := ParseWith("t.yaml", y, tc.o)
			check := func(what string, got error, want []string) {
				t.Helper()
				var lines []string
				for _, e := range AsErrors(got) {
					lines = append(lines, strings.Replace(e.Error(), " (write ${", "\x00", 1))
				}
				for i := range lines {
					lines[i], _, _ = strings.Cut(lines[i], "\x00")
				}
				if strings.Join(lines, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s:\n%s\nwant:\n%s", what, strings.Join(lines, "\n"), strings.Join(want, "\n"))
				}
			}
			check("errors", err, tc.errs)
			if warnings == nil {
				check("warnings", nil, tc.warnings)
			} else {
				check("warnings", warnings, tc.warnings)
			}
			if (c == nil) != (tc.errs != nil) {
				t.Errorf("config %v with errors %v", c != nil, err)
			}
		})
	}
}
