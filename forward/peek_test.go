package forward

import (
	"context"
	"net"
	"testing"
	"time"
)

// PeerClosed tells an idle connection the server closed from one still
// open, without consuming anything from it.
func TestClientPeerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	cl, err := Dial(context.Background(), ClientOptions{Address: ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sc := <-accepted
	if cl.PeerClosed() {
		t.Fatal("an open, quiet connection reported closed")
	}
	if cl.PeerClosed() {
		t.Fatal("PeerClosed changed the connection")
	}
	sc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !cl.PeerClosed() {
		if time.Now().After(deadline) {
			t.Fatal("a connection the server closed still looks open after 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
