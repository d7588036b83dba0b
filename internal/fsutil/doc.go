// Package fsutil holds the file-system steps that make a file durable:
// write through a temporary file, fsync, rename, fsync the folder; and
// folders created with their parent chain made durable (MkdirAll). Safe for
// concurrent use.
//
// Every durable folder of maruta is made with MkdirAll or synced with
// SyncDir (buffer, quarantine, dead letters, schemas, the dedup record, the
// lake): ARCHITECTURE.md, "Durability contract". Imports nothing of the
// module.
package fsutil
