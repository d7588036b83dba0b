//go:build !unix

package fsutil

// SyncDir does nothing where folders cannot be fsynced.
func SyncDir(dir string) error { return nil }
