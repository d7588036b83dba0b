package config

import (
	"errors"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Error is a configuration error at a place in a file.
type Error struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted path such as outputs[1].buffer.timekey; may be empty
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is a list of configuration errors, one per line of text.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// AsErrors returns the *Error values err holds: itself, or the elements of
// an Errors. A nil or other error gives nil.
func AsErrors(err error) Errors {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e *Error
	if errors.As(err, &e) {
		return Errors{e}
	}
	return nil
}

// KeyError is an error a component found at one key of the section it was
// built from, named relative to that section ("tls.ca_file",
// "object_key"). A config check that builds the component joins it to the
// section's path, so the error names the file, line and key.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

// AtKey returns err as a *KeyError at key (nil for nil). When err is a
// *KeyError itself, the keys are joined: AtKey("tls", AtKey("ca_file", e))
// is at tls.ca_file.
func AtKey(key string, err error) error {
	if err == nil {
		return nil
	}
	if ke, ok := err.(*KeyError); ok {
		return &KeyError{Key: key + "." + ke.Key, Err: ke.Err}
	}
	return &KeyError{Key: key, Err: err}
}

// ComponentError turns an error from building the component of the
// section at path into an *Error with file and line: at path joined with
// the *KeyError's key when err holds one, else at path.
func (c *Config) ComponentError(path string, err error) *Error {
	var ke *KeyError
	if errors.As(err, &ke) {
		return c.Errorf(path+"."+ke.Key, "%v", ke.Err)
	}
	return c.Errorf(path, "%v", err)
}

// Faulty reports whether the config as loaded has an error at or under
// path, or left a key there out (it failed to decode, or its environment
// variable is unset): a component built from that section would report
// what is already reported, or check a value the file does not hold.
// Config checks (Options.Check) skip faulty sections.
func (c *Config) Faulty(path string) bool {
	for _, k := range c.faulty {
		if keyUnder(k, path) || keyUnder(path, k) && k != "" {
			return true
		}
	}
	return false
}

// EnvPolicy is what an unset ${VAR} without a default is.
type EnvPolicy uint8

const (
	// EnvError: the config does not load (maruta run).
	EnvError EnvPolicy = iota
	// EnvWarning: reported as a warning (maruta validate, in CI without
	// the production secrets).
	EnvWarning
	// EnvIgnore: not reported (maruta convert, which prints ${VAR} as is).
	EnvIgnore
)

// collector gathers every error of one Parse in one place, and decides
// which to report: errors at a key whose value is not what the file says
// (it failed to decode, or its variable is unset) are left out, and so are
// errors at keys the caller does not read.
type collector struct {
	file    string
	decode  Errors   // decode errors, each the reason of a key left out
	errs    Errors   // validation and component errors
	unset   Errors   // unset variables
	dropped []string // keys left out of decoding, or empty for an unset variable
	reads   []string
}

func (c *collector) add(err error) { c.errs = c.append(c.errs, err) }

func (c *collector) append(list Errors, err error) Errors {
	if es := AsErrors(err); es != nil {
		return append(list, es...)
	} else if err != nil {
		return append(list, &Error{File: c.file, Msg: err.Error()})
	}
	return list
}

// result returns the errors and warnings to report.
func (c *collector) result(policy EnvPolicy) (errs, warnings Errors) {
	for _, e := range c.decode {
		if c.keep(e) {
			errs = append(errs, e)
		}
	}
	for _, e := range c.errs {
		if c.keep(e) && !c.isDropped(e.Key) {
			errs = append(errs, e)
		}
	}
	for _, e := range c.unset {
		if !c.keep(e) {
			continue
		}
		switch policy {
		case EnvError:
			errs = append(errs, e)
		case EnvWarning:
			warnings = append(warnings, e)
		}
	}
	return sortErrors(errs), sortErrors(warnings)
}

// faultyKeys returns the keys of the errors so far and the keys left out.
func (c *collector) faultyKeys() []string {
	keys := slices.Clone(c.dropped)
	for _, es := range []Errors{c.decode, c.errs, c.unset} {
		for _, e := range es {
			keys = append(keys, e.Key)
		}
	}
	return keys
}

// isDropped reports whether key is at or under a key left out.
func (c *collector) isDropped(key string) bool {
	for _, d := range c.dropped {
		if d != "" && keyUnder(key, d) {
			return true
		}
	}
	return false
}

// keep reports whether e is at a key the caller reads.
func (c *collector) keep(e *Error) bool { return Options{Reads: c.reads}.ReadsKey(e.Key) }

// ReadsKey reports whether the caller reads key (under o.Reads): an empty
// key (the file as a whole), a read key, or one above or below a read key.
func (o Options) ReadsKey(key string) bool {
	if len(o.Reads) == 0 || key == "" {
		return true
	}
	k := KeyPattern(key)
	for _, r := range o.Reads {
		if keyUnder(k, r) || keyUnder(r, k) {
			return true
		}
	}
	return false
}

var keyIndex = regexp.MustCompile(`\[\d+\]|\.stores`)

// KeyPattern removes list indices from a key path and treats a copy's
// stores as outputs: outputs[1].stores[0].bucket becomes outputs.bucket.
func KeyPattern(key string) string { return keyIndex.ReplaceAllString(key, "") }

// keyUnder reports whether key is prefix or below it (prefix.x, prefix[1]).
func keyUnder(key, prefix string) bool {
	if !strings.HasPrefix(key, prefix) {
		return false
	}
	rest := key[len(prefix):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}

// sortErrors orders errors by line (those without a line last), keeping
// the order of errors on one line, and removes repeats.
func sortErrors(es Errors) Errors {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Line, es[j].Line
		if a == 0 || b == 0 {
			return a != 0 && b == 0
		}
		return a < b
	})
	out := es[:0]
	seen := map[string]bool{}
	for _, e := range es {
		if s := e.Error(); !seen[s] {
			seen[s] = true
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
