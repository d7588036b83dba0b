package buffer

import (
	"fmt"
	"testing"
)

// BenchmarkAppendLarge is BenchmarkAppend with the requests of
// fluentd/Fluent Bit forwarders: 1000 Docker-shaped events per Consume
// (about 330 KB), 16 appenders — the buffer's share of `maruta bench`
// target 1.
func BenchmarkAppendLarge(b *testing.B) {
	for _, mode := range []string{"always", "off"} {
		b.Run(fmt.Sprintf("batch=1000/fsync=%s/appenders=16", mode), func(b *testing.B) {
			benchAppend(b, mode, 16, 1000)
		})
	}
}
