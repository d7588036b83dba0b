//go:build unix

package fsutil

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// LockDir takes an exclusive, non-blocking flock on dir/LOCK so two
// processes never share the folder; what names the folder in the error
// ("buffer folder"). The lock goes with the process, so kill -9 releases
// it; closing the file releases it too.
func LockDir(dir, what string) (*os.File, error) {
	f, err := os.OpenFile(dir+"/LOCK", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s %s is in use by another process", what, dir)
		}
		return nil, fmt.Errorf("lock %s: %w", what, err)
	}
	return f, nil
}
