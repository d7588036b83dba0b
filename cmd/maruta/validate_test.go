package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateBuildsOutputs: validate builds every output's sink as run
// would, so mistakes only the sink finds (a template placeholder it does
// not know, object_key without ${chunk_id}, a CA file it cannot read) fail
// validate with file:line:key, every one in one run, in a copy's stores
// too. Before, all four passed validate and run failed at the first. The
// check writes nothing: the data_dir is not even created.
func TestValidateBuildsOutputs(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	f := writeFile(t, dir, "sinks.yaml", `data_dir: `+data+`
sources:
  - type: forward
outputs:
  - type: forward
    match: fwd.**
    servers: [{host: 127.0.0.1}]
    tls:
      ca_file: `+filepath.Join(dir, "no-such-ca.pem")+`
  - type: s3
    match: s3.**
    bucket: b
    endpoint: http://127.0.0.1:1
    object_key: ${path}%Y%m%d_${node}.parquet
  - type: file
    match: lake.**
    path: `+filepath.Join(dir, "lake")+`/${tga}/
  - type: copy
    stores:
      - type: syslog
        host: 127.0.0.1
        tls: {ca_file: `+filepath.Join(dir, "no-such-ca.pem")+`}
      - type: file
`)
	want := []string{
		f + `:9: outputs[0].tls.ca_file: read TLS CA file: open ` + filepath.Join(dir, "no-such-ca.pem") + `: no such file or directory`,
		f + `:14: outputs[1].object_key: "${path}%Y%m%d_${node}.parquet" must contain ${chunk_id}: it makes keys deterministic, so a retry never writes a second object`,
		f + `:17: outputs[2].path: unknown placeholder ${tga} (known: ${tag}, ${tag_parts[N]} and the buffer's chunk_keys)`,
		f + `:22: outputs[3].stores[0].tls.ca_file: read TLS CA file: open ` + filepath.Join(dir, "no-such-ca.pem") + `: no such file or directory`,
	}
	for _, args := range [][]string{{"validate", f}, {"run", "-dry-run", f}} {
		code, out, errs := runCLI(t, args...)
		if got := strings.TrimSuffix(errs, "\n"); code != 1 || out != "" || got != strings.Join(want, "\n") {
			t.Errorf("%s: exit %d, stdout %q, stderr:\n%s\nwant exit 1 and:\n%s", args[0], code, out, got, strings.Join(want, "\n"))
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("checking the outputs touched data_dir %s: %v", data, err)
	}

	// A sink the config already found an error in is not built again, and
	// an unset variable (a warning for validate) does not make one fail.
	f = writeFile(t, dir, "faulty.yaml", `data_dir: `+data+`
sources:
  - type: forward
outputs:
  - type: forward
    servers: [{host: 127.0.0.1, port: 0x}]
    tls: {ca_file: `+filepath.Join(dir, "no-such-ca.pem")+`}
  - type: syslog
    match: none
    host: 127.0.0.1
    tls: {ca_file: ${MARUTA_TEST_SURELY_UNSET}}
`)
	code, out, errs := runCLI(t, "validate", f)
	if code != 1 || out != "" || strings.Count(errs, "\n") != 2 || !strings.Contains(errs, f+":6: outputs[0].servers[0].port: ") ||
		!strings.HasPrefix(errs, "warning: "+f+":11: outputs[1].tls.ca_file: environment variable MARUTA_TEST_SURELY_UNSET is not set") {
		t.Errorf("faulty outputs: exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}
}
