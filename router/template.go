package router

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tag templates of rewrite_tag rules, expanded the way
// fluent-plugin-rewrite-tag-filter does: first $1..$9 (any $N) are replaced
// by the rule's captures, then the placeholders ${tag}, __TAG__,
// ${tag_parts[N]}, ${hostname} and __HOSTNAME__ in the result. ${tag} and
// the parts come from the tag after remove_tag_prefix.
//
// Unlike the plugin, __TAG_PARTS[N]__ works (the plugin documents it but its
// placeholder pattern never matches it), and an unknown placeholder written
// in the template is a config error rather than an empty string.

// rewritePlaceholderRE is the plugin's placeholder pattern, extended with
// __TAG_PARTS[N]__.
var rewritePlaceholderRE = regexp.MustCompile(`__TAG_PARTS\[[0-9]+\]__|\$\{[a-z_]+(\[[0-9]+\])?\}|__[A-Z_]+__`)

type tagTemplate struct {
	src      string
	backrefs bool
}

func compileTagTemplate(s string) (tagTemplate, error) {
	t := tagTemplate{src: s}
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '$' && s[i+1] >= '0' && s[i+1] <= '9' {
			t.backrefs = true
		}
	}
	for _, m := range rewritePlaceholderRE.FindAllString(s, -1) {
		if _, ok := rewritePlaceholderKnown(m); !ok {
			return t, fmt.Errorf("unknown placeholder %s in tag %q (supported: $1..$9, ${tag}, __TAG__, ${tag_parts[N]}, __TAG_PARTS[N]__, ${hostname}, __HOSTNAME__)", m, s)
		}
	}
	if strings.Contains(s, "${tag_parts[-") {
		return t, fmt.Errorf("tag %q: rewrite_tag supports ${tag_parts[N]} with N >= 0 only (fluentd leaves a negative index unexpanded)", s)
	}
	return t, nil
}

// rewritePlaceholderKnown classifies a placeholder: kind 't' tag, 'h'
// hostname, 'p' tag part (index returned via phIndex).
func rewritePlaceholderKnown(m string) (byte, bool) {
	switch m {
	case "${tag}", "__TAG__":
		return 't', true
	case "${hostname}", "__HOSTNAME__":
		return 'h', true
	}
	if strings.HasPrefix(m, "${tag_parts[") || strings.HasPrefix(m, "__TAG_PARTS[") {
		return 'p', true
	}
	return 0, false
}

// tagContext is what placeholders expand to for one tag.
type tagContext struct {
	tag      string
	parts    []string
	hostname string
}

func newTagContext(tag, hostname string) tagContext {
	return tagContext{tag: tag, parts: strings.Split(tag, "."), hostname: hostname}
}

// expand appends the rewritten tag. text is the rule's matched value and
// loc the submatch indexes (nil for an inverted rule, which replaces no $N).
func (t *tagTemplate) expand(dst []byte, scratch []byte, text []byte, loc []int, capitalize bool, tc *tagContext) (out, scratchOut []byte) {
	src := t.src
	var s []byte
	if t.backrefs && loc != nil {
		scratch = scratch[:0]
		for i := 0; i < len(src); i++ {
			if src[i] == '$' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9' {
				j := i + 1
				n := 0
				for j < len(src) && src[j] >= '0' && src[j] <= '9' {
					if n < 1<<20 {
						n = n*10 + int(src[j]-'0')
					}
					j++
				}
				if n >= 1 && 2*n+1 < len(loc) && loc[2*n] >= 0 {
					cap := text[loc[2*n]:loc[2*n+1]]
					if capitalize {
						scratch = appendCapitalized(scratch, cap)
					} else {
						scratch = append(scratch, cap...)
					}
				}
				i = j - 1
				continue
			}
			scratch = append(scratch, src[i])
		}
		s = scratch
	} else {
		scratch = append(scratch[:0], src...)
		s = scratch
	}
	return expandRewritePlaceholders(dst, s, tc), scratch
}

// appendCapitalized is Ruby's String#capitalize: the first character upper
// case, the rest lower case.
func appendCapitalized(dst, b []byte) []byte {
	if len(b) == 0 {
		return dst
	}
	r, size := utf8.DecodeRune(b)
	dst = utf8.AppendRune(dst, unicode.ToUpper(r))
	for _, r := range string(b[size:]) {
		dst = utf8.AppendRune(dst, unicode.ToLower(r))
	}
	return dst
}

// expandRewritePlaceholders scans s like the plugin's gsub and appends the
// result.
func expandRewritePlaceholders(dst, s []byte, tc *tagContext) []byte {
	for i := 0; i < len(s); {
		if n, kind, idx := matchRewritePlaceholder(s[i:]); n > 0 {
			switch kind {
			case 't':
				dst = append(dst, tc.tag...)
			case 'h':
				dst = append(dst, tc.hostname...)
			case 'p':
				if idx < len(tc.parts) {
					dst = append(dst, tc.parts[idx]...)
				}
			}
			i += n
			continue
		}
		dst = append(dst, s[i])
		i++
	}
	return dst
}

// matchRewritePlaceholder matches rewritePlaceholderRE at the start of s
// without the regexp engine. It returns the match length, the kind ('t',
// 'h', 'p', or 0 for an unknown placeholder, which expands to nothing) and
// the tag part index.
func matchRewritePlaceholder(s []byte) (n int, kind byte, idx int) {
	if len(s) < 4 {
		return 0, 0, 0
	}
	if s[0] == '_' && s[1] == '_' {
		if b := s[2:]; len(b) > 10 && string(b[:10]) == "TAG_PARTS[" {
			j := 10
			v, k := 0, 0
			for j < len(b) && b[j] >= '0' && b[j] <= '9' {
				if v < 1<<20 {
					v = v*10 + int(b[j]-'0')
				}
				j++
				k++
			}
			if k > 0 && len(b) >= j+3 && b[j] == ']' && b[j+1] == '_' && b[j+2] == '_' {
				return 2 + j + 3, 'p', v
			}
		}
		run := 2
		for run < len(s) && (s[run] >= 'A' && s[run] <= 'Z' || s[run] == '_') {
			run++
		}
		// __X__ with X non-empty: the longest such prefix of the run.
		for end := run; end >= 5; end-- {
			if s[end-1] == '_' && s[end-2] == '_' {
				name := string(s[:end])
				switch name {
				case "__TAG__":
					return end, 't', 0
				case "__HOSTNAME__":
					return end, 'h', 0
				}
				return end, 0, 0
			}
		}
		return 0, 0, 0
	}
	if s[0] == '$' && s[1] == '{' {
		j := 2
		for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] == '_') {
			j++
		}
		if j == 2 || j >= len(s) {
			return 0, 0, 0
		}
		name := string(s[2:j])
		if s[j] == '}' {
			switch name {
			case "tag":
				return j + 1, 't', 0
			case "hostname":
				return j + 1, 'h', 0
			}
			return j + 1, 0, 0
		}
		if s[j] == '[' {
			k := j + 1
			v := 0
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				if v < 1<<20 {
					v = v*10 + int(s[k]-'0')
				}
				k++
			}
			if k > j+1 && k+1 < len(s) && s[k] == ']' && s[k+1] == '}' {
				if name == "tag_parts" {
					return k + 2, 'p', v
				}
				return k + 2, 0, 0
			}
		}
	}
	return 0, 0, 0
}

// Record values (the record step, record_transformer): ${tag},
// ${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]} (N may be negative,
// counting from the end) and ${hostname}. Upper-case ${VAR} were replaced by
// the config loader.

type valueSeg struct {
	lit  string
	kind byte // 0 literal, 't' tag, 'h' hostname, 'p' part, 'P' prefix, 'S' suffix
	idx  int
}

type valueTemplate []valueSeg

var recordPlaceholderRE = regexp.MustCompile(`\$\{([a-z_]+)(?:\[(-?[0-9]+)\])?\}`)

func compileValueTemplate(s string) (valueTemplate, error) {
	var t valueTemplate
	last := 0
	for _, m := range recordPlaceholderRE.FindAllStringSubmatchIndex(s, -1) {
		if m[0] > last {
			t = append(t, valueSeg{lit: s[last:m[0]]})
		}
		name := s[m[2]:m[3]]
		hasIdx := m[4] >= 0
		idx := 0
		if hasIdx {
			idx, _ = strconv.Atoi(s[m[4]:m[5]])
		}
		var kind byte
		switch {
		case name == "tag" && !hasIdx:
			kind = 't'
		case name == "hostname" && !hasIdx:
			kind = 'h'
		case name == "tag_parts" && hasIdx:
			kind = 'p'
		case name == "tag_prefix" && hasIdx:
			kind = 'P'
		case name == "tag_suffix" && hasIdx:
			kind = 'S'
		default:
			return nil, fmt.Errorf("unknown placeholder %s in %q (supported: ${tag}, ${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]}, ${hostname}; upper-case ${VAR} reads the environment)", s[m[0]:m[1]], s)
		}
		t = append(t, valueSeg{kind: kind, idx: idx})
		last = m[1]
	}
	if last < len(s) || len(t) == 0 {
		t = append(t, valueSeg{lit: s[last:]})
	}
	return t, nil
}

func (t valueTemplate) expand(dst []byte, tc *tagContext) []byte {
	for _, sg := range t {
		switch sg.kind {
		case 0:
			dst = append(dst, sg.lit...)
		case 't':
			dst = append(dst, tc.tag...)
		case 'h':
			dst = append(dst, tc.hostname...)
		case 'p', 'P', 'S':
			n := len(tc.parts)
			i := sg.idx
			if i < 0 {
				i += n
			}
			if i < 0 || i >= n {
				continue // fluentd: unknown placeholder, empty
			}
			switch sg.kind {
			case 'p':
				dst = append(dst, tc.parts[i]...)
			case 'P':
				for k := 0; k <= i; k++ {
					if k > 0 {
						dst = append(dst, '.')
					}
					dst = append(dst, tc.parts[k]...)
				}
			case 'S':
				for k := i; k < n; k++ {
					if k > i {
						dst = append(dst, '.')
					}
					dst = append(dst, tc.parts[k]...)
				}
			}
		}
	}
	return dst
}
