package delivery

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestPermanent(t *testing.T) {
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	p := Permanent(io.ErrUnexpectedEOF)
	wrapped := fmt.Errorf("s3 sink x: %w", p)
	for _, c := range []struct {
		err  error
		want bool
	}{
		{p, true}, {wrapped, true}, {io.ErrUnexpectedEOF, false}, {fmt.Errorf("x: %w", io.EOF), false}, {nil, false},
	} {
		if got := IsPermanent(c.err); got != c.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	// The cause stays visible through the mark.
	if !errors.Is(wrapped, io.ErrUnexpectedEOF) || p.Error() != io.ErrUnexpectedEOF.Error() {
		t.Errorf("cause lost: %v", wrapped)
	}
}
