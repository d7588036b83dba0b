package buffer

import (
	"fmt"
	"testing"

	"github.com/marutalog/maruta/internal/config"
)

// BenchmarkAppendLarge is BenchmarkAppend with the requests of
// fluentd/Fluent Bit forwarders: 1000 Docker-shaped events per Consume
// (about 330 KB), 16 appenders (the buffer's share of `maruta bench`
// target 1) and 64 (the group-commit target: always vs off).
func BenchmarkAppendLarge(b *testing.B) {
	for _, n := range []int{16, 64} {
		for _, mode := range []config.FsyncMode{"always", "off"} {
			b.Run(fmt.Sprintf("batch=1000/fsync=%s/appenders=%d", mode, n), func(b *testing.B) {
				benchAppend(b, mode, n, 1000, false, false)
			})
		}
	}
}
