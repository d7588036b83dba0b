package main

import (
	"bytes"
	"os"
	"path/filepath"

	"github.com/marutalog/maruta/internal/config"
)

// loadConfig reads a maruta YAML file, or a fluentd fluent.conf (by its .conf
// extension or its first directive), into a validated config. An empty file
// name means the embedded default.
func loadConfig(file string) (*config.Config, error) {
	if file == "" {
		return config.Default()
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if isFluentConf(file, data) {
		return loadFluentConf(file, data)
	}
	return config.Parse(file, data, os.LookupEnv)
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
