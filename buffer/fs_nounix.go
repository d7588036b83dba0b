//go:build !unix

package buffer

import "os"

// lockDir is a no-op where flock does not exist: run one maruta per folder.
func lockDir(dir string) (*os.File, error) { return nil, nil }
