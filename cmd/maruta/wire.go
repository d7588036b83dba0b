package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/fluentconf"
	"github.com/marutalog/maruta/router"
)

// loadFluentConf converts a fluent.conf and loads the result.
func loadFluentConf(file string, data []byte) (*config.Config, error) {
	y, err := fluentconf.Convert(file, data)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse(file+" (converted)", y, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("converted config is invalid (please report this): %w", err)
	}
	return cfg, nil
}

// checkComponents builds every component the config describes without
// starting it, so `maruta validate` reports what only components can check.
func checkComponents(cfg *config.Config) error {
	host, _ := os.Hostname()
	_, err := router.New(router.Options{Config: cfg, Hostname: host,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	return err
}
