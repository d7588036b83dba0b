// Package examples_test checks every file in examples/: each maruta config
// loads and validates the way `maruta validate` does (in process and with
// the built binary), each JSON and YAML file parses, the deployment files
// agree with the configs they run (ports, mounts, health checks, grace
// periods, environment, IAM resources), the configs route the way their
// comments say, and the Grafana dashboard queries only metrics that maruta
// registers. Run with `go test ./examples/`.
package examples_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/testutil"
	"github.com/marutalog/maruta/router"
)

// marutaBin is cmd/maruta built once for the tests that run the binary.
var marutaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "maruta-examples")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	marutaBin = filepath.Join(dir, "maruta")
	build := exec.Command(goTool(), "build", "-o", marutaBin, "../cmd/maruta")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build maruta:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// readFile reads a file of examples/ by its slash path.
func readFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exampleFiles lists every file under examples/ except the Go tests.
func exampleFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasSuffix(p, ".go") {
			return nil
		}
		files = append(files, filepath.ToSlash(p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// yamlDocs decodes every document of a (multi-document) YAML file.
func yamlDocs(name string, data []byte) ([]any, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var docs []any
	for i, d := range f.Docs {
		if d.Body == nil {
			continue
		}
		var v any
		if err := yaml.NodeToValue(d.Body, &v); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if v != nil {
			docs = append(docs, v)
		}
	}
	return docs, nil
}

// decodeYAMLDocs decodes each document of a YAML file into a new T.
func decodeYAMLDocs[T any](t testing.TB, name string, data []byte) []T {
	t.Helper()
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out []T
	for i, d := range f.Docs {
		if d.Body == nil {
			continue
		}
		var v T
		if err := yaml.NodeToValue(d.Body, &v); err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		out = append(out, v)
	}
	return out
}

// TestEveryFileParses parses each JSON and YAML file (every document of
// multi-document files), allows nothing else but Markdown, and checks that
// the README describes every file.
func TestEveryFileParses(t *testing.T) {
	files := exampleFiles(t)
	if len(files) < 15 {
		t.Fatalf("only %d files under examples/: %v", len(files), files)
	}
	readme := string(readFile(t, "README.md"))
	for _, f := range files {
		data := readFile(t, f)
		switch path.Ext(f) {
		case ".json":
			var v any
			dec := json.NewDecoder(bytes.NewReader(data))
			if err := dec.Decode(&v); err != nil {
				t.Errorf("%s: %v", f, err)
			} else if dec.More() {
				t.Errorf("%s: more than one JSON value", f)
			}
			if _, ok := v.(map[string]any); !ok {
				t.Errorf("%s: not a JSON object", f)
			}
		case ".yaml", ".yml":
			docs, err := yamlDocs(f, data)
			if err != nil {
				t.Error(err)
			} else if len(docs) == 0 {
				t.Errorf("%s: no YAML document", f)
			}
		case ".md":
		default:
			t.Errorf("%s: unexpected file type (the test checks JSON, YAML and Markdown)", f)
		}
		if f != "README.md" && !strings.Contains(readme, f) {
			t.Errorf("README.md does not mention %s", f)
		}
	}
}

// namedConfig is a maruta config found among the example files.
type namedConfig struct {
	name string // file, or file#key for a ConfigMap entry
	data []byte
}

// marutaConfigs finds every maruta config in examples/: each YAML document
// that is not a Kubernetes object, a kustomization or a compose file, and
// each YAML entry of a ConfigMap.
func marutaConfigs(t testing.TB) []namedConfig {
	t.Helper()
	var out []namedConfig
	for _, f := range exampleFiles(t) {
		if ext := path.Ext(f); ext != ".yaml" && ext != ".yml" {
			continue
		}
		data := readFile(t, f)
		docs, err := yamlDocs(f, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			m, _ := d.(map[string]any)
			switch {
			case m["apiVersion"] != nil && m["kind"] != nil:
				if m["kind"] == "ConfigMap" {
					cm, _ := m["data"].(map[string]any)
					for k, v := range cm {
						if s, ok := v.(string); ok && (strings.HasSuffix(k, ".yaml") || strings.HasSuffix(k, ".yml")) {
							out = append(out, namedConfig{f + "#" + k, []byte(s)})
						}
					}
				}
			case m["services"] != nil:
				// docker compose
			default:
				if len(docs) != 1 {
					t.Fatalf("%s: a maruta config must be a single YAML document", f)
				}
				out = append(out, namedConfig{f, data})
			}
		}
	}
	var names []string
	for _, c := range out {
		names = append(names, c.name)
	}
	for _, want := range []string{"agent.yaml", "aggregator.yaml", "laptop.yaml", "compose/maruta.yaml", "kubernetes/configmap.yaml#maruta.yaml"} {
		if !slices.Contains(names, want) {
			t.Fatalf("config %s not found among %v", want, names)
		}
	}
	return out
}

var requiredVarRE = regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)\}`)

// fakeEnv gives every ${VAR} without a default a plausible value; variables
// with a default stay unset, so the defaults apply.
func fakeEnv(data []byte) map[string]string {
	env := map[string]string{}
	for _, m := range requiredVarRE.FindAllSubmatch(data, -1) {
		name := string(m[1])
		env[name] = "fake-" + strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	}
	return env
}

// hostFiles points the files the examples name on their hosts (the TLS
// certificates under /etc/maruta/tls/) at test certificates, as fakeEnv
// does for variables: run -dry-run reads them, as run does.
func hostFiles(t testing.TB, data []byte) []byte {
	if !bytes.Contains(data, []byte("/etc/maruta/tls/")) {
		return data
	}
	dir := testutil.WriteTestCerts(t)
	return []byte(strings.NewReplacer(
		"/etc/maruta/tls/ca.pem", filepath.Join(dir, "ca.crt"),
		"/etc/maruta/tls/tls.crt", filepath.Join(dir, "server.crt"),
		"/etc/maruta/tls/tls.key", filepath.Join(dir, "server.key"),
	).Replace(string(data)))
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// validateConfig does in process what `maruta validate` does: load with
// the environment env (strict keys, defaults, Validate), then build the
// router in check mode, which compiles patterns, regexps and templates.
func validateConfig(name string, data []byte, env map[string]string) (*config.Config, error) {
	cfg, err := config.Parse(name, data, lookupIn(env))
	if err != nil {
		return nil, err
	}
	if _, err := router.New(router.Options{Config: cfg, Hostname: "example-host",
		Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()}); err != nil {
		return nil, err
	}
	return cfg, nil
}

// cleanEnv is the test's environment without variables that could change
// what a config means.
func cleanEnv(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, set := extra[k]; set || strings.HasPrefix(k, "MARUTA_") || strings.HasPrefix(k, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// binaryValidate runs `maruta run -dry-run -c FILE` with env (the config
// checked as run loads it: an unset variable is an error, where `maruta
// validate` only warns) and returns the exit code and what it printed.
func binaryValidate(t testing.TB, name string, data []byte, env map[string]string) (int, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), strings.NewReplacer("/", "_", "#", "_").Replace(name))
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(marutaBin, "run", "-dry-run", "-c", file)
	cmd.Env = cleanEnv(env)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

// TestConfigsValidate validates every maruta config, in process and with
// `maruta run -dry-run`, with every ${VAR} it needs set to a fake value.
func TestConfigsValidate(t *testing.T) {
	for _, c := range marutaConfigs(t) {
		t.Run(strings.ReplaceAll(c.name, "/", "_"), func(t *testing.T) {
			env := fakeEnv(c.data)
			c.data = hostFiles(t, c.data)
			cfg, err := validateConfig(c.name, c.data, env)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Sources) == 0 || len(cfg.LeafOutputs()) == 0 {
				t.Fatalf("%s: no source or no output", c.name)
			}
			code, out := binaryValidate(t, c.name, c.data, env)
			if code != 0 || !strings.Contains(out, ": ok (") {
				t.Fatalf("maruta run -dry-run %s: exit %d\n%s", c.name, code, out)
			}
		})
	}
}

// TestValidationCatchesMistakes proves the checks above are not vacuous:
// an unknown key, an invalid value, a regexp only the router compiles and a
// missing environment variable each fail, in process and in the binary.
func TestValidationCatchesMistakes(t *testing.T) {
	agent := readFile(t, "agent.yaml")
	aggregator := readFile(t, "aggregator.yaml")
	cases := []struct {
		name, file  string
		data        []byte
		old, new    string
		drop        string // environment variable to leave unset
		errContains string
	}{
		{"unknown key", "agent.yaml", agent, "    name: docker\n", "    name: docker\n    bogus_key: 1\n", "", "bogus_key"},
		{"invalid value", "agent.yaml", agent, "compress: gzip", "compress: brotli", "", "compress"},
		{"bad duration", "aggregator.yaml", aggregator, "window: 10m", "window: ten minutes", "", "window"},
		{"regexp", "aggregator.yaml", aggregator, "pattern: ^EVENT$", "pattern: ^(EVENT$", "", "pattern"},
		{"missing env", "agent.yaml", agent, "", "", "AGGREGATOR_HOST", "AGGREGATOR_HOST"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data
			if tc.old != "" {
				data = bytes.Replace(tc.data, []byte(tc.old), []byte(tc.new), 1)
				if bytes.Equal(data, tc.data) {
					t.Fatalf("%q is not in %s any more: update this test", tc.old, tc.file)
				}
			}
			env := fakeEnv(tc.data)
			delete(env, tc.drop)
			if _, err := validateConfig(tc.file, tc.data, fakeEnv(tc.data)); err != nil {
				t.Fatalf("the unchanged %s must be valid: %v", tc.file, err)
			}
			_, err := validateConfig(tc.file, data, env)
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Errorf("in process: got %v, want an error about %s", err, tc.errContains)
			}
			code, out := binaryValidate(t, tc.file, data, env)
			if code == 0 || !strings.Contains(out, tc.errContains) {
				t.Errorf("maruta run -dry-run: exit %d, %q; want a failure about %s", code, out, tc.errContains)
			}
		})
	}
}

// dockerImage is what the repository's Dockerfile gives a container.
type dockerImage struct {
	env        map[string]string
	entrypoint []string
	uid, gid   string
	exposed    []string
}

// readDockerfile reads the final stage of ../Dockerfile.
func readDockerfile(t testing.TB) dockerImage {
	t.Helper()
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	var img dockerImage
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			img = dockerImage{env: map[string]string{}}
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile: ENV %q: only the KEY=VALUE form is understood here", rest)
				}
				img.env[k] = strings.Trim(v, `"`)
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &img.entrypoint); err != nil {
				t.Fatalf("Dockerfile: ENTRYPOINT %s: %v", rest, err)
			}
		case "USER":
			img.uid, img.gid, _ = strings.Cut(rest, ":")
		case "EXPOSE":
			img.exposed = strings.Fields(rest)
		}
	}
	if len(img.entrypoint) == 0 || img.uid == "" {
		t.Fatalf("Dockerfile: no ENTRYPOINT or USER in the final stage")
	}
	return img
}

// withEnv overlays env on the image's environment.
func (img dockerImage) withEnv(env map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range img.env {
		out[k] = v
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// iamMatch reports whether an IAM resource or action pattern (with * and ?)
// matches s.
func iamMatch(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if iamMatch(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && iamMatch(pattern[1:], s[1:])
	}
	return s != "" && pattern[0] == s[0] && iamMatch(pattern[1:], s[1:])
}

// stringList reads a JSON value that is a string or a list of strings.
func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
