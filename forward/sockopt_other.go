//go:build !linux

package forward

import (
	"errors"
	"net"
)

// refuseHandshakes is not available here (no socket filters): a
// connection that completes between the server's last Accept and the
// listener's close is reset by the kernel.
func refuseHandshakes(*net.TCPListener) error { return errors.ErrUnsupported }

// setRcvLowat is not used here: a wake-up per read is the portable shape.
func setRcvLowat(net.Conn, int) error { return errors.ErrUnsupported }
