package fluentconf

import (
	"github.com/marutalog/maruta/internal/config"
)

// UnsetVar is an environment reference ("#{ENV['X']}") of a fluent.conf
// whose variable is not set and has no default.
type UnsetVar struct {
	// Err names the fluent.conf, the line and the parameter.
	Err *config.Error
	// Section is the top-level key of the maruta config the parameter
	// converts into: sources, http, pipeline, outputs or log.
	Section string
}

// UnsetEnv lists the environment references of a fluent.conf that lookup
// does not resolve, at the fluent.conf's lines: a user's mistake, reported
// where the user wrote it rather than in the converted YAML.
func UnsetEnv(file string, data []byte, lookup func(string) (string, bool)) ([]UnsetVar, error) {
	root, err := parse(file, data)
	if err != nil {
		return nil, err
	}
	var out []UnsetVar
	var walk func(e *element, section string)
	walk = func(e *element, section string) {
		for _, p := range e.params {
			if !p.env {
				continue
			}
			for _, msg := range config.UnsetEnv(p.val, lookup) {
				out = append(out, UnsetVar{Section: section, Err: &config.Error{File: file, Line: p.line, Key: p.key, Msg: msg}})
			}
		}
		for _, c := range e.elems {
			walk(c, section)
		}
	}
	for _, e := range root.elems {
		walk(e, directiveSection(e))
	}
	return out, nil
}

// directiveSection is the maruta config section a top-level directive
// becomes.
func directiveSection(e *element) string {
	switch e.name {
	case "source":
		if t, _ := e.typ(); t == "monitor_agent" || t == "prometheus" {
			return "http"
		}
		return "sources"
	case "filter":
		return "pipeline"
	case "system":
		return "log"
	}
	return "outputs" // <match> and <label>: outputs (or rewrite steps)
}
