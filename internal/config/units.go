package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Duration is a time span written as a Go duration ("1h30m", "250ms"), with
// "d" for days ("7d"), or as a plain number of seconds ("60", fluentd style).
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// FormatDuration writes d compactly: "1h", "90s" → "1m30s", "72h".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ParseDuration parses the forms Duration accepts.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 {
			return 0, fmt.Errorf("duration %q is negative", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	if strings.HasSuffix(s, "d") {
		n, err := strconv.ParseFloat(strings.TrimSuffix(s, "d"), 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want e.g. 500ms, 10s, 5m, 1h, 1d, or seconds)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return d, nil
}

// UnmarshalYAML implements yaml.NodeUnmarshaler so errors carry the position.
func (d *Duration) UnmarshalYAML(n ast.Node) error {
	v, err := ParseDuration(scalarText(n))
	if err != nil {
		return nodeError(n, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d in Go duration syntax.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Size is a byte count written as a plain number or with a unit: k, m, g, t
// (fluentd style, powers of 1024), KiB, MiB, GiB, TiB (powers of 1024) or
// KB, MB, GB, TB (powers of 1000). "64MiB", "128m" and "1048576" all work.
type Size int64

// ParseSize parses the forms Size accepts.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	if num == "" {
		return 0, fmt.Errorf("invalid size %q (want e.g. 64MiB, 128m, 1GB or a byte count)", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	var mult float64
	switch strings.ToLower(unit) {
	case "", "b":
		mult = 1
	case "k", "kib":
		mult = 1 << 10
	case "m", "mib":
		mult = 1 << 20
	case "g", "gib":
		mult = 1 << 30
	case "t", "tib":
		mult = 1 << 40
	case "kb":
		mult = 1e3
	case "mb":
		mult = 1e6
	case "gb":
		mult = 1e9
	case "tb":
		mult = 1e12
	default:
		return 0, fmt.Errorf("invalid size unit %q in %q (use k, m, g, KiB, MiB, GiB, KB, MB, GB)", unit, s)
	}
	return int64(f * mult), nil
}

// UnmarshalYAML implements yaml.NodeUnmarshaler so errors carry the position.
func (z *Size) UnmarshalYAML(n ast.Node) error {
	v, err := ParseSize(scalarText(n))
	if err != nil {
		return nodeError(n, err)
	}
	*z = Size(v)
	return nil
}

// MarshalYAML writes z as a plain byte count, or with a binary unit when exact.
func (z Size) MarshalYAML() (any, error) { return FormatSize(int64(z)), nil }

// FormatSize renders n with the largest binary unit that divides it exactly.
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

func scalarText(n ast.Node) string {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value
	case nil:
		return ""
	}
	return n.String()
}

// posError is an error that knows where in the YAML it happened; Parse turns
// it into an *Error naming file, line and key, and leaves node out when it
// decodes the rest.
type posError struct {
	line, col int
	node      ast.Node
	err       error
}

func (e *posError) Error() string { return fmt.Sprintf("[%d:%d] %v", e.line, e.col, e.err) }
func (e *posError) Unwrap() error { return e.err }

// nodeError is an error about node n, reported at n.
func nodeError(n ast.Node, err error) error { return dropError(n, n, err) }

// dropError is an error reported at node at, about node n (which decoding
// leaves out).
func dropError(at, n ast.Node, err error) error {
	if at == nil || at.GetToken() == nil {
		return err
	}
	p := at.GetToken().Position
	return &posError{line: p.Line, col: p.Column, node: n, err: err}
}
