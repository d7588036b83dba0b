// Package arena hands out byte slices that live until the next Reset, cut
// from blocks that are reused from one Reset to the next: copying many small
// values (records, keys, converted text) costs no allocation per value once
// the blocks exist. The router keeps new records of one Consume call in one;
// the Parquet encoder keeps the values of one batch of rows.
//
// An Arena is not safe for concurrent use: one per goroutine (the router
// keeps one in each per-call state). Imports nothing of the module.
package arena
