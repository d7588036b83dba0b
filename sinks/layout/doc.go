// Package layout is where an output puts its objects: the path and
// object_key templates (strftime, ${tag}, ${tag_parts[N]}, chunk keys),
// rendered per chunk into deterministic keys (Keys), resolved per tag for
// the buffer (TagResolver), and what a path means to a query engine: the
// table location and its partition columns with Athena's partition
// projection (Parse). Placeholder values are sanitized (SanitizeValue).
//
// Keys, event templates and the function TagResolver returns are read-only
// once made: safe for concurrent use.
//
// Imports: internal/… and sinks/schema. The buffer does not import it: it
// gets the function TagResolver returns from cmd/maruta. athena imports it
// for Parse, without the transports of sinks.
package layout
