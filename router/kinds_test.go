package router

import (
	"testing"

	"github.com/marutalog/maruta/internal/config"
)

// TestEveryStepTypeIsBuilt: each pipeline step type the config accepts has
// its builder here, and there is none for a type the config does not know.
func TestEveryStepTypeIsBuilt(t *testing.T) {
	types := config.StepTypes()
	if len(types) < 5 {
		t.Fatalf("config step types %v", types)
	}
	known := map[string]bool{}
	for _, typ := range types {
		known[typ] = true
		if stepBuilders[typ] == nil {
			t.Errorf("step type %s has no builder", typ)
		}
	}
	for typ := range stepBuilders {
		if !known[typ] {
			t.Errorf("builder for %s, which is no config step type", typ)
		}
	}
}
