package testutil

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// TCPProxy relays TCP connections to a target on loopback and loses what
// a test tells it to, on the way back from the target (replies, acks): the
// next reply (then it closes both connections), all replies while muted
// (the connections stay open, as when a reply is lost on the way), or
// everything while paused (nothing is relayed until Resume, as with a
// stopped server whose kernel still accepts connections). It stops when
// the test ends.
type TCPProxy struct {
	ln     net.Listener
	target string
	drop   atomic.Int32
	after  atomic.Int32 // pause once this many more replies were relayed (0: off)
	muted  atomic.Bool
	gate   sync.RWMutex // write-locked while paused
	paused atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

// NewTCPProxy starts a proxy to target.
func NewTCPProxy(t testing.TB, target string) *TCPProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &TCPProxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		p.Shutdown()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's address.
func (p *TCPProxy) Addr() string { return p.ln.Addr().String() }

// Shutdown stops accepting and closes every relayed connection: the
// target looks gone (connections refused).
func (p *TCPProxy) Shutdown() {
	p.ln.Close()
	p.Resume()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// DropNextReply loses the next reply and closes both ends of its
// connection.
func (p *TCPProxy) DropNextReply() { p.drop.Store(1) }

// MuteReplies loses every reply while on, keeping the connections open.
func (p *TCPProxy) MuteReplies(on bool) { p.muted.Store(on) }

// PauseAfterReplies pauses the proxy once n more replies went through.
func (p *TCPProxy) PauseAfterReplies(n int) { p.after.Store(int32(n)) }

// Pause stops relaying in both directions until Resume.
func (p *TCPProxy) Pause() {
	if !p.paused.Swap(true) {
		p.gate.Lock()
	}
}

// Resume relays again after Pause.
func (p *TCPProxy) Resume() {
	if p.paused.Swap(false) {
		p.gate.Unlock()
	}
}

// relay copies from src to dst, waiting while paused; replies (from the
// target) may be lost as the proxy is told.
func (p *TCPProxy) relay(dst, src net.Conn, replies bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 4096)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate.RLock() // waits while Pause holds the gate
			//lint:ignore SA2001 the empty section is the wait
			p.gate.RUnlock()
			if replies && p.drop.CompareAndSwap(1, 0) {
				return
			}
			if !(replies && p.muted.Load()) {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if replies && p.after.Load() > 0 && p.after.Add(-1) == 0 {
				p.Pause()
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *TCPProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { p.relay(s, c, false) })
		p.wg.Go(func() { p.relay(c, s, true) })
	}
}
