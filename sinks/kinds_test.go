package sinks

import (
	"testing"

	"github.com/marutalog/maruta/internal/config"
)

// TestEveryOutputTypeHasAKind: each output type the config accepts (but
// copy, whose stores are outputs) is built here, as a buffered sink
// exactly when its config has a buffer section.
func TestEveryOutputTypeHasAKind(t *testing.T) {
	types := config.OutputTypes()
	if len(types) < 9 {
		t.Fatalf("config output types %v", types)
	}
	for _, typ := range types {
		o, ok := config.NewOutput(typ)
		if !ok || o.Type != typ || o.Body() == &o.OutputCommon {
			t.Errorf("config.NewOutput(%q) = %+v, %v", typ, o, ok)
			continue
		}
		k, ok := KindOf(typ)
		if typ == "copy" {
			if ok {
				t.Errorf("copy has a kind here; its stores are the outputs")
			}
			continue
		}
		if !ok || (k.Sink == nil) == (k.Consumer == nil) {
			t.Errorf("type %s: kind %+v, %v; want exactly one of Sink and Consumer", typ, k, ok)
			continue
		}
		if buffered := o.BufferConfig() != nil; buffered != (k.Sink != nil) {
			t.Errorf("type %s: config buffer section %v, sink %v", typ, buffered, k.Sink != nil)
		}
	}
	for typ := range kinds {
		if _, ok := config.NewOutput(typ); !ok {
			t.Errorf("kind %s is no config output type", typ)
		}
	}
}
