//go:build linux

package forward

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// refuseHandshakes attaches a socket filter that drops every packet to the
// TCP listener, so the kernel completes no more handshakes on it: a client
// that connects from now on gets no SYN-ACK and retries its SYN (after 1 s,
// then 3 s …) until the listener is closed (then it is refused) or a new
// process listens on the port (then it connects there). The connections
// the kernel established before stay in the accept queue for the server to
// take. The listener must be plain TCP: the kernel refuses socket filters
// on Multipath TCP sockets (Go's default for listeners).
func refuseHandshakes(ln *net.TCPListener) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return fmt.Errorf("refuse new connections: %w", err)
	}
	dropAll := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}} // accept 0 bytes of every packet
	prog := unix.SockFprog{Len: uint16(len(dropAll)), Filter: &dropAll[0]}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog)
	}); err != nil {
		return fmt.Errorf("refuse new connections: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("refuse new connections: attach socket filter: %w", serr)
	}
	return nil
}

// setRcvLowat sets the socket's receive low-water mark: a waiting read
// wakes once n bytes are queued (or its deadline passes). Setting it
// lower wakes a waiting reader at once if that many are queued.
func setRcvLowat(nc net.Conn, n int) error {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return errors.ErrUnsupported
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, n)
	}); err != nil {
		return err
	}
	return serr
}
