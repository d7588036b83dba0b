// Package lifecycle is the one start / drain / stop contract every running
// part of maruta keeps — the sources (forward.Server), the router
// (router.Router) and the buffered outputs (buffer.Buffer) — and the Runner
// with which cmd/maruta starts, drains and stops them, whatever their kind.
//
// It owns the Component interface and the Runner. It is a leaf: it imports
// the standard library only, so every component package may import it for
// its interface guard (var _ lifecycle.Component = (*X)(nil)) without
// importing anything else.
package lifecycle
