//go:build !unix

package fsutil

import "os"

// LockDir is a no-op where flock does not exist: run one maruta per folder.
func LockDir(dir, what string) (*os.File, error) { return nil, nil }
