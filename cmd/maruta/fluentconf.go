package main

import (
	"fmt"
	"os"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/fluentconf"
)

// loadFluentConf converts a fluent.conf and loads the result. An unset
// variable is the user's mistake and is reported at the fluent.conf's
// line; what else the converted YAML gets wrong is reported at its own
// lines (`maruta convert` prints it).
func loadFluentConf(file string, data []byte, o config.Options) (*config.Config, config.Errors, error) {
	y, err := fluentconf.Convert(file, data)
	if err != nil {
		return nil, nil, err
	}
	lookup := o.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	unset, err := fluentconf.UnsetEnv(file, data, lookup)
	if err != nil {
		return nil, nil, err
	}
	var errs, warnings config.Errors
	for _, u := range unset {
		switch {
		case !o.ReadsKey(u.Section) || o.UnsetEnv == config.EnvIgnore:
		case o.UnsetEnv == config.EnvWarning:
			warnings = append(warnings, u.Err)
		default:
			errs = append(errs, u.Err)
		}
	}
	yo := o
	yo.UnsetEnv = config.EnvIgnore // reported above, where the user wrote them
	cfg, _, err := config.ParseWith(file+" (converted)", y, yo)
	if err != nil {
		err = fmt.Errorf("the config converted from %s (maruta convert %s prints it) is invalid:\n%w", file, file, err)
		if errs != nil {
			err = fmt.Errorf("%w\n%w", errs, err)
		}
		return nil, warnings, err
	}
	if errs != nil {
		return nil, warnings, errs
	}
	return cfg, warnings, nil
}
