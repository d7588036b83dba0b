package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/internal/testutil"
)

// bombRSSBound is the peak RSS TestCompressionBombs allows (README,
// "Sources": the decompression budget plus the rest of the process).
const bombRSSBound = 512 << 20

// TestCompressionBombs: 8 gzip and 8 zstd CompressedPackedForward requests
// that inflate to 2 GiB each (about 2 MB and 65 KB on the wire), all at
// once, while a normal client sends acked requests. No bomb is acked, the
// normal client's events are acked and stored, maruta's peak RSS stays
// under bombRSSBound, and after the attack its RSS goes back under 100 MB
// (within a minute). maruta runs without the race detector here: its RSS
// is what is measured.
func TestCompressionBombs(t *testing.T) {
	bin := plainMarutaBin(t)
	dir := t.TempDir()
	addr := freeTCPPort(t)
	cfg := writeFile(t, dir, "bomb.yaml", fmt.Sprintf(`
node: bomb
data_dir: %[1]s/data
http: {listen: "127.0.0.1:0"}
sources:
  - type: forward
    listen: %[2]s
outputs:
  - type: file
    name: out
    format: jsonl
    path: %[1]s/out/${tag}/
    buffer: {flush_interval: 200ms}
`, dir, addr))
	gz, zs := gzipBomb(t, 2<<30), zstdBomb(t, 2<<30)
	t.Logf("bombs: gzip %d bytes, zstd %d bytes, each 2 GiB inflated", len(gz), len(zs))
	p := startMarutaBin(t, bin, dir, nil, "-c", cfg)
	// Far above the bound, the process is killed: the machine is shared.
	rss := &rssSampler{pid: p.cmd.Process.Pid, stop: make(chan struct{}), limit: 3 << 30, over: p.kill}
	go rss.run()
	defer rss.halt()
	base := rss.now()

	// The normal client, acked, all along.
	acks := &powerAcks{at: map[string]time.Time{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s := &ackedSender{addr: addr, name: "n", events: 20, pad: 100, resend: true, acked: acks.add,
			tag: func(int) string { return "normal" }}
		s.run(stop)
	})
	testutil.WaitUntil(t, 20*time.Second, "the normal client's first acks", func() bool { return acks.count() > 0 })

	// 16 bombs at once; each must end without an ack.
	start := time.Now()
	var acked atomic.Int32
	var bombs sync.WaitGroup
	for i := range 16 {
		kind, payload := "gzip", gz
		if i%2 == 1 {
			kind, payload = "zstd", zs
		}
		bombs.Go(func() {
			if bombAcked(t, addr, kind, payload, fmt.Sprintf("bomb-%d", i)) {
				acked.Add(1)
			}
		})
	}
	bombs.Wait()
	over := time.Now()
	peakDuring := rss.peak()
	if n := acked.Load(); n > 0 {
		t.Errorf("%d bombs were acked", n)
	}
	served := 0
	for _, at := range acks.snapshot() {
		if at.After(start) && at.Before(over) {
			served++
		}
	}
	t.Logf("the attack took %s; RSS before %d MB, peak %d MB; normal events acked during it: %d",
		over.Sub(start).Round(time.Millisecond), base>>20, peakDuring>>20, served)
	if served == 0 {
		t.Error("the normal client got no ack during the attack")
	}
	refused := p.metric("maruta_forward_errors_total", `reason="decompressed_too_large"`) +
		p.metric("maruta_forward_errors_total", `reason="decompress_budget"`)
	if refused < 16 {
		t.Errorf("%v bombs counted as refused, want 16", refused)
	}

	// Memory goes back.
	back := time.Now()
	testutil.WaitUntil(t, 60*time.Second, fmt.Sprintf("RSS under 100 MB after the attack (peak %d MB)", rss.peak()>>20),
		func() bool { return rss.now() < 100<<20 })
	t.Logf("RSS under 100 MB %s after the attack", time.Since(back).Round(time.Millisecond))
	if pk := rss.peak(); pk >= bombRSSBound {
		t.Errorf("peak RSS %d MB, bound %d MB", pk>>20, bombRSSBound>>20)
	}

	close(stop)
	wg.Wait()
	p.stop(60 * time.Second)
	stored := readLakeIDs(t, dir+"/out")
	missing := 0
	for id := range acks.snapshot() {
		if stored[id] == 0 {
			missing++
		}
	}
	if missing > 0 || acks.count() == 0 {
		t.Errorf("%d of %d acked normal events not stored", missing, acks.count())
	}
}

// bombAcked sends one CompressedPackedForward request with payload and a
// chunk option and reports whether it was acked (the server must close the
// connection instead).
func bombAcked(t *testing.T, addr, kind string, payload []byte, chunk string) bool {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Errorf("dial: %v", err)
		return false
	}
	defer conn.Close()
	req := msgpack.AppendArrayHeader(nil, 3)
	req = msgpack.AppendString(req, "bomb")
	req = msgpack.AppendBin(req, payload)
	req = msgpack.AppendMapHeader(req, 2)
	req = msgpack.AppendString(req, "compressed")
	req = msgpack.AppendString(req, kind)
	req = msgpack.AppendString(req, "chunk")
	req = msgpack.AppendString(req, chunk)
	conn.SetDeadline(time.Now().Add(90 * time.Second))
	if _, err := conn.Write(req); err != nil {
		return false // refused while sending: fine
	}
	b, _ := io.ReadAll(conn)
	return bytes.Contains(b, []byte("ack"))
}

// gzipBomb is a gzip stream of n zero bytes: members of 1 MiB of zeros
// (about 1 KB each), which a multistream reader inflates one after the
// other.
func gzipBomb(t *testing.T, n int) []byte {
	var member bytes.Buffer
	w, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	w.Write(make([]byte, 1<<20))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.Repeat(member.Bytes(), n>>20)
}

// zstdBomb is one zstd frame of n zero bytes (n a multiple of 128 KiB)
// made of RLE blocks: a 128 KiB window, then one 4-byte block per 128 KiB
// (RFC 8878: block header with type RLE and the regenerated size, then the
// byte). 2 GiB take 65,542 bytes.
func zstdBomb(t *testing.T, n int) []byte {
	const block = 128 << 10
	if n%block != 0 {
		t.Fatalf("zstd bomb of %d bytes: not a multiple of 128 KiB", n)
	}
	out := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3} // magic, no content size, window 2^17
	for i := range n / block {
		h := uint32(block)<<3 | 1<<1 // RLE
		if i == n/block-1 {
			h |= 1 // last block
		}
		out = append(out, byte(h), byte(h>>8), byte(h>>16), 0)
	}
	return out
}

// rssSampler follows a process's resident set size (from /proc) every
// 20 ms and remembers the largest.
type rssSampler struct {
	pid   int
	limit int64  // over this, over is called (once)
	over  func() // may be nil
	max   atomic.Int64
	last  atomic.Int64
	stop  chan struct{}
	once  sync.Once
	hit   sync.Once
}

func (r *rssSampler) run() {
	for {
		if rss := r.sample(); r.over != nil && rss > r.limit {
			r.hit.Do(func() {
				fmt.Fprintf(os.Stderr, "RSS %d MB above %d MB: killing the process\n", rss>>20, r.limit>>20)
				r.over()
			})
		}
		select {
		case <-r.stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *rssSampler) sample() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.pid))
	if err != nil {
		return r.last.Load()
	}
	var rss, hwm int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			if f[0] == "VmRSS:" {
				rss = kb << 10
			} else {
				hwm = kb << 10
			}
		}
	}
	r.last.Store(rss)
	for {
		m := r.max.Load()
		v := max(rss, hwm) // VmHWM: the kernel's peak, between samples too
		if v <= m || r.max.CompareAndSwap(m, v) {
			break
		}
	}
	return rss
}

func (r *rssSampler) now() int64  { return r.sample() }
func (r *rssSampler) peak() int64 { r.sample(); return r.max.Load() }
func (r *rssSampler) halt()       { r.once.Do(func() { close(r.stop) }) }
