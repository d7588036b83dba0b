package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"

	"github.com/marutalog/maruta/athena"
	"github.com/marutalog/maruta/internal/config"
)

// What each command needs of its config (README "Command line"). A command
// that does not start the pipeline reads only some keys: errors elsewhere,
// unset variables included (a source's shared key for `athena ddl`), are
// not its business.
var (
	// loadRun is run's, run -dry-run's and a reload's: every error.
	loadRun = config.Options{}
	// loadValidate: an unset variable is a warning, so CI can validate a
	// config without the production secrets (run -dry-run is the strict
	// check, on the host that has them).
	loadValidate = config.Options{UnsetEnv: config.EnvWarning}
	// loadConvert: convert prints ${VAR} as it is.
	loadConvert = config.Options{UnsetEnv: config.EnvIgnore}
	// loadAthena: the keys the DDL is made of.
	loadAthena = config.Options{Reads: athena.ConfigKeys}
	// loadAthenaApply: those and the s3 outputs' region, where the API is.
	loadAthenaApply = config.Options{Reads: append(slices.Clip(athena.ConfigKeys), "outputs.region")}
	// loadHTTP: healthcheck and reload read http.listen.
	loadHTTP = config.Options{Reads: []string{"http"}}
	// loadDeadletter: data_dir and the outputs' names and buffer folders.
	loadDeadletter = config.Options{Reads: []string{"data_dir", "outputs.name", "outputs.type", "outputs.buffer.path"}}
)

// loadConfig loads a config the way run does.
func loadConfig(file string) (*config.Config, error) {
	cfg, _, err := loadConfigWith(file, loadRun)
	return cfg, err
}

// loadConfigWith reads a maruta YAML file, or a fluentd fluent.conf (by
// its .conf extension or its first directive), into a validated config,
// components checked too, and returns the warnings o asks for. An empty
// file name means the embedded default.
func loadConfigWith(file string, o config.Options) (*config.Config, config.Errors, error) {
	o.Check = checkComponents
	if file == "" {
		return config.ParseWith("<embedded>", config.DefaultYAML(), o)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	if isFluentConf(file, data) {
		return loadFluentConf(file, data, o)
	}
	return config.ParseWith(file, data, o)
}

// isFluentConf tells a fluent.conf from YAML: the .conf extension, or a first
// non-comment line that starts a <directive> or an @include.
func isFluentConf(file string, data []byte) bool {
	if filepath.Ext(file) == ".conf" {
		return true
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		return line[0] == '<' || bytes.HasPrefix(line, []byte("@include"))
	}
	return false
}
