package sinktest

import (
	"testing"

	"github.com/marutalog/maruta/internal/config"
)

// Output parses a config whose outputs are given as YAML (the lines under
// "outputs:") and returns the config and its first leaf output, defaults
// applied. node is test-node, data_dir is dataDir.
func Output(t testing.TB, dataDir, outputs string) (*config.Config, *config.Output) {
	t.Helper()
	y := "node: test-node\ndata_dir: " + dataDir + "\nsources: [{type: forward}]\noutputs:\n" + outputs
	cfg, err := config.Parse("test.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	return cfg, cfg.LeafOutputs()[0]
}
