// Package crashfs is a FUSE file system for tests that can lose power.
//
// A test mounts it on an empty folder, runs a program on it (maruta), and at
// any moment cuts the power: the file system stops answering (every request
// fails with EIO), the test kills the program, and the file system is rolled
// back to what a disk would hold after the power came back. The test then
// mounts it again and restarts the program on what survived.
//
// # The model
//
// crashfs keeps two states of everything: the live state, which every
// request sees, and the durable state, which survives a power cut. It
// implements the least that POSIX promises and that a program can rely on
// across file systems, not what one journaling file system happens to give:
//
//   - File data. A write changes the live content at once (reads see it); it
//     becomes durable with fsync or fdatasync of that file, which makes the
//     whole file durable as it is then: every byte and the size. Until then
//     the file's durable content is what the last sync left (empty for a new
//     file). A truncation is a change like a write.
//   - Directory entries. Creating a file or folder, unlinking, removing a
//     folder and renaming change the live directory at once; they become
//     durable only with an fsync of the directory that holds the entry. An
//     fsync of a file makes its content durable, never its name, and an
//     fsync of a folder makes its entries durable, never its own entry in its
//     parent: a new folder survives only if its parent was fsynced after it
//     was made, and a file in it only if every folder up the chain was.
//   - Renames are atomic, as a journal makes them: a rename from one folder
//     to another becomes durable as a whole (removed from the first, added
//     to the second) when either folder is fsynced, together with the
//     earlier pending renames of the same file. A rename within one folder
//     becomes durable with that folder.
//   - Inodes outlive names: a file that lost every durable name is gone
//     after the cut; a file unlinked (or renamed over) whose removal was not
//     durable comes back, with its durable content.
//
// A cut discards everything not durable. Cut with a torn option keeps part
// of each file's unsynced writes instead: the bytes below a random offset
// in the file (as if the kernel had written back the first dirty pages and
// no more), which tears writes in the middle, not at the boundaries the
// program chose.
//
// A real ext4 with data=ordered gives more than this, and code that is
// correct here is correct there: its journal commits metadata in order, so
// an fsync of any file also makes every earlier create, rename and unlink
// durable (crashfs: only those of the fsynced folder); a commit every few
// seconds makes everything durable without any fsync; it writes data
// before the metadata that exposes it, so an appended region never shows
// zeros (crashfs: a torn cut may leave zeros between kept bytes and the old
// end of file, as ext4 data=writeback or xfs can); and it replaces a file
// renamed over another with its data flushed first (auto_da_alloc).
//
// Not modelled: hard links, symbolic links, device nodes and extended
// attributes (refused with ENOTSUP); fallocate (refused: programs fall back
// to writes); mmap writes; the page and sector granularity of real tears
// other than through the torn offset; fsync errors of a failing disk (only
// the EIO of a machine that is off); timestamps and permissions beyond what
// stat shows; more than one program writing the same file. Byte-range locks
// are the kernel's local ones (not sent to crashfs), so flock works and is
// released when the process dies, as on a local disk.
//
// The backing folder holds one file per inode with its durable content;
// unsynced data and every directory live in memory, so a test's unsynced
// bytes must fit in memory.
//
// Mounting needs /dev/fuse and either root (crashfs mounts with mount(2)
// itself) or the fusermount3 (or fusermount) helper of libfuse.
//
// Concurrency: one mutex guards the whole model; requests are served
// concurrently and serialized on it.
//
// Test code: imported by tests only, never by the binary. Imports nothing of
// the module; go-fuse is used here and nowhere else.
package crashfs
