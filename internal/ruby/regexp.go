package ruby

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Regexp is a Ruby (Onigmo) regular expression translated to RE2.
//
// Ruby and RE2 differ in ways that matter for configs written for fluentd:
// in Ruby '^' and '$' are always line anchors, /m means "dot matches
// newline", \h is a hex digit, \Z may precede a final newline, \e is ESC,
// \u and \xH are written differently. Those are translated. Constructs RE2
// cannot run in linear time (lookahead, lookbehind, backreferences, atomic
// groups, possessive quantifiers, conditionals, \G, \K, subexpression
// calls, absent operators) are rejected with a message naming the
// construct.
//
// Two programs are compiled: the faithful one, and one without the line
// mode for the common case of a value without a newline, where both mean the
// same and RE2 can use its faster one-pass matcher.
type Regexp struct {
	src  string
	full *regexp.Regexp // with (?m)
	nonl *regexp.Regexp // without (?m): used when the input has no '\n'
}

// ParseRegexpLiteral splits fluentd's regexp parameter syntax: "/re/"
// with optional flags i and m after the closing slash, or a bare pattern.
// It returns the pattern and flags.
func ParseRegexpLiteral(s string) (pattern, flags string, err error) {
	if !strings.HasPrefix(s, "/") {
		return s, "", nil
	}
	r := strings.LastIndexByte(s, '/')
	if r == 0 || r < len(s)-3 {
		return "", "", fmt.Errorf("regexp %q starts with '/' but has no closing '/' (write /pattern/ or /pattern/i)", s)
	}
	flags = s[r+1:]
	for _, f := range flags {
		if f != 'i' && f != 'm' {
			return "", "", fmt.Errorf("regexp %q: unknown flag %q (fluentd accepts i and m)", s, f)
		}
	}
	return s[1:r], flags, nil
}

// CompileRegexp translates and compiles a Ruby pattern with flags ("i"
// ignore case, "m" dot matches newline).
func CompileRegexp(pattern, flags string) (*Regexp, error) {
	body, err := translateRuby(pattern)
	if err != nil {
		return nil, err
	}
	f := ""
	if strings.Contains(flags, "i") {
		f += "i"
	}
	if strings.Contains(flags, "m") {
		f += "s"
	}
	pre := func(extra string) string {
		if f+extra == "" {
			return ""
		}
		return "(?" + f + extra + ")"
	}
	full, err := regexp.Compile(pre("m") + body)
	if err != nil {
		return nil, fmt.Errorf("regexp %q: %v", pattern, err)
	}
	nonl, err := regexp.Compile(pre("") + body)
	if err != nil {
		return nil, fmt.Errorf("regexp %q: %v", pattern, err)
	}
	return &Regexp{src: pattern, full: full, nonl: nonl}, nil
}

// CompileRegexpLiteral is ParseRegexpLiteral then CompileRegexp.
func CompileRegexpLiteral(s string) (*Regexp, error) {
	p, f, err := ParseRegexpLiteral(s)
	if err != nil {
		return nil, err
	}
	return CompileRegexp(p, f)
}

func (r *Regexp) String() string { return r.src }

func (r *Regexp) pick(b []byte) *regexp.Regexp {
	for _, c := range b {
		if c == '\n' {
			return r.full
		}
	}
	return r.nonl
}

// Match reports whether b contains a match.
func (r *Regexp) Match(b []byte) bool { return r.pick(b).Match(b) }

// FindSubmatchIndex is regexp.FindSubmatchIndex.
func (r *Regexp) FindSubmatchIndex(b []byte) []int { return r.pick(b).FindSubmatchIndex(b) }

// SubexpNames is regexp.SubexpNames.
func (r *Regexp) SubexpNames() []string { return r.full.SubexpNames() }

// NumSubexp is regexp.NumSubexp.
func (r *Regexp) NumSubexp() int { return r.full.NumSubexp() }

// RE2 returns the translated program as compiled (Ruby's line anchors
// included), for callers that keep a list of *regexp.Regexp.
func (r *Regexp) RE2() *regexp.Regexp { return r.full }

type unsupportedError struct{ what, hint string }

func (e *unsupportedError) Error() string {
	s := e.what + " is not supported (RE2 matches in linear time and cannot express it)"
	if e.hint != "" {
		s += "; " + e.hint
	}
	return s
}

// translateRuby rewrites a Ruby pattern into RE2 syntax, one construct at a
// time: escapes, character classes, groups and quantifiers are translated
// by the functions below, any other byte is copied.
func translateRuby(src string) (string, error) {
	var b strings.Builder
	afterAtom := false // a quantifier may follow
	for i := 0; i < len(src); {
		c := src[i]
		var out string
		var adv int
		var err error
		atom := false // a quantifier may follow what this construct wrote
		switch c {
		case '\\':
			if i+1 >= len(src) {
				return "", fmt.Errorf("regexp %q: ends with a lone '\\'", src)
			}
			out, adv, err = rubyEscape(src, i, false)
			atom = true
		case '[':
			out, adv, err = rubyClass(src, i)
			atom = true
		case '(':
			if strings.HasPrefix(src[i:], "(?#") {
				j := strings.IndexByte(src[i:], ')')
				if j < 0 {
					return "", fmt.Errorf("regexp %q: unterminated (?# comment", src)
				}
				i += j + 1 // a comment changes nothing, afterAtom included
				continue
			}
			out, adv, err = rubyGroup(src, i)
		case '*', '+', '?':
			out, adv, err = rubyQuantifier(src, i, afterAtom)
		case '{':
			out, adv, atom, err = rubyBraces(src, i)
		default:
			out, adv, atom = src[i:i+1], 1, c != '|'
		}
		if err != nil {
			return "", err
		}
		b.WriteString(out)
		i += adv
		afterAtom = atom
	}
	return b.String(), nil
}

// unsupported is the error of a construct RE2 cannot express.
func unsupported(src, what, hint string) error {
	return fmt.Errorf("regexp %q: %w", src, &unsupportedError{what, hint})
}

// refusedGroups are the group openings RE2 cannot run in linear time, with
// how errors name them.
var refusedGroups = []struct{ prefix, what string }{
	{"(?=", "lookahead (?=…)"}, {"(?!", "lookahead (?!…)"},
	{"(?<=", "lookbehind (?<=…)"}, {"(?<!", "lookbehind (?<!…)"},
	{"(?>", "atomic group (?>…)"}, {"(?~", "absent operator (?~…)"},
	{"(?(", "conditional group (?(…)…)"},
}

// rubyGroup translates the group opening at src[i] ('('): named groups
// (?<n>…) and (?'n'…) become (?P<n>…), flag groups keep their flags (Ruby's
// m is RE2's s).
func rubyGroup(src string, i int) (string, int, error) {
	rest := src[i:]
	for _, g := range refusedGroups {
		if strings.HasPrefix(rest, g.prefix) {
			return "", 0, unsupported(src, g.what, "")
		}
	}
	switch {
	case strings.HasPrefix(rest, "(?<"):
		j := strings.IndexByte(rest, '>')
		if j < 0 {
			return "", 0, fmt.Errorf("regexp %q: unterminated group name", src)
		}
		return "(?P<" + rest[3:j] + ">", j + 1, nil
	case strings.HasPrefix(rest, "(?'"):
		j := strings.IndexByte(rest[3:], '\'')
		if j < 0 {
			return "", 0, fmt.Errorf("regexp %q: unterminated group name", src)
		}
		return "(?P<" + rest[3:3+j] + ">", 3 + j + 1, nil
	case strings.HasPrefix(rest, "(?"):
		return rubyFlagGroup(src, rest)
	}
	return "(", 1, nil
}

// rubyFlagGroup translates (?imx-imx) and (?imx-imx:…) at the start of rest.
func rubyFlagGroup(src, rest string) (string, int, error) {
	j := 2
	on, off := "", ""
	neg := false
	for ; j < len(rest) && rest[j] != ')' && rest[j] != ':'; j++ {
		f := rest[j]
		switch f {
		case '-':
			neg = true
			continue
		case 'i':
		case 'm':
			f = 's'
		case 'x':
			if neg { // turning extended mode off changes nothing here
				continue
			}
			return "", 0, unsupported(src, "extended mode (?x)", "remove the x flag and the white space it ignores")
		default:
			return "", 0, fmt.Errorf("regexp %q: unknown group syntax %q", src, rest[:j+1])
		}
		if neg {
			off += string(f)
		} else {
			on += string(f)
		}
	}
	if j >= len(rest) {
		return "", 0, fmt.Errorf("regexp %q: unterminated group", src)
	}
	flags := on
	if off != "" {
		flags += "-" + off
	}
	switch {
	case rest[j] == ')' && flags == "":
		return "", j + 1, nil
	case rest[j] == ')':
		return "(?" + flags + ")", j + 1, nil
	case flags == "":
		return "(?:", j + 1, nil
	}
	return "(?" + flags + ":", j + 1, nil
}

// rubyQuantifier copies the quantifier at src[i] and a lazy '?' after it; a
// possessive '+' after it is refused (afterAtom: it follows an atom).
func rubyQuantifier(src string, i int, afterAtom bool) (string, int, error) {
	c := src[i]
	if i+1 < len(src) && src[i+1] == '+' && afterAtom {
		return "", 0, unsupported(src, "possessive quantifier "+string(c)+"+", "drop the second '+'")
	}
	if i+1 < len(src) && src[i+1] == '?' {
		return src[i : i+2], 2, nil
	}
	return src[i : i+1], 1, nil
}

// rubyBraces translates the '{' at src[i]: a counted quantifier {n},
// {n,}, {n,m} or Ruby's {,m} (with a lazy '?'; possessive refused), or else
// a literal brace (literal is then true: a quantifier may follow it).
func rubyBraces(src string, i int) (out string, adv int, literal bool, err error) {
	j := i + 1
	for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == ',') {
		j++
	}
	inner := src[i+1 : j]
	if j >= len(src) || src[j] != '}' || inner == "" || inner == "," || strings.Count(inner, ",") > 1 {
		return `\{`, 1, true, nil
	}
	if strings.HasPrefix(inner, ",") {
		inner = "0" + inner
	}
	out = "{" + inner + "}"
	j++
	if j < len(src) && src[j] == '+' {
		return "", 0, false, unsupported(src, "possessive quantifier {…}+", "")
	}
	if j < len(src) && src[j] == '?' {
		out += "?"
		j++
	}
	return out, j - i, false, nil
}

// escapeRule is how one escape letter translates: fixed text outside and
// inside a character class, or a refusal ("" text and a name), or fn for
// escapes that read what follows.
type escapeRule struct {
	out, inClass          string
	refuse, refuseInClass string
	fn                    func(src string, i int, inClass bool) (string, int, error)
}

// rubyEscapes are the escapes that differ between Ruby and RE2, or that RE2
// lacks. Other letters and bytes: see rubyEscape.
var rubyEscapes = map[byte]escapeRule{
	'0': {fn: func(src string, i int, _ bool) (string, int, error) { return octal(src, i) }},
	'G': {refuse: `\G`, refuseInClass: `\G`},
	'K': {refuse: `\K`, refuseInClass: `\K`},
	'X': {refuse: `\X`, refuseInClass: `\X`},
	'h': {out: "[0-9a-fA-F]", inClass: "0-9a-fA-F"},
	'H': {out: "[^0-9a-fA-F]", refuseInClass: `\H inside a character class`},
	'Z': {out: `(?:\n?\z)`, inClass: "Z"},
	'R': {out: `(?:\r\n|[\n\v\f\r\x{85}\x{2028}\x{2029}])`, refuseInClass: `\R inside a character class`},
	'e': {out: `\x1b`, inClass: `\x1b`},
	'a': {out: `\x07`, inClass: `\x07`},
	'c': {refuse: `control escape \c`, refuseInClass: `control escape \c`},
	'C': {refuse: `control escape \C`, refuseInClass: `control escape \C`},
	'M': {refuse: `control escape \M`, refuseInClass: `control escape \M`},
	'x': {fn: hexEscape},
	'u': {fn: unicodeEscape},
	'p': {fn: propertyEscape},
	'P': {fn: propertyEscape},
	'b': {out: `\b`, inClass: `\x08`}, // word boundary; backspace in a class
	'B': {out: `\B`, inClass: "B"},
	'A': {out: `\A`, inClass: "A"},
	'z': {out: `\z`, inClass: "z"},
}

// rubyEscape translates the escape at src[i] ('\\'); inClass selects the
// character-class form. It returns the RE2 text and how many bytes it used.
func rubyEscape(src string, i int, inClass bool) (string, int, error) {
	c := src[i+1]
	next := byte(0)
	if i+2 < len(src) {
		next = src[i+2]
	}
	switch {
	case c >= '1' && c <= '9' && inClass: // octal in a class
		return octal(src, i)
	case c >= '1' && c <= '9':
		return "", 0, unsupported(src, "backreference \\"+string(c), "")
	case c == 'k' && (next == '<' || next == '\''):
		return "", 0, unsupported(src, "named backreference \\k", "")
	case c == 'g' && (next == '<' || next == '\''):
		return "", 0, unsupported(src, "subexpression call \\g", "")
	}
	if r, ok := rubyEscapes[c]; ok {
		out, refuse := r.out, r.refuse
		if inClass {
			out, refuse = r.inClass, r.refuseInClass
		}
		switch {
		case r.fn != nil:
			return r.fn(src, i, inClass)
		case refuse != "":
			return "", 0, unsupported(src, refuse, "")
		}
		return out, 2, nil
	}
	switch {
	case strings.IndexByte("dDwWsStnrfv", c) >= 0: // the same in RE2
		return `\` + string(c), 2, nil
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		// Ruby reads an unknown letter escape as the letter itself.
		return string(c), 2, nil
	case c >= utf8.RuneSelf: // an escaped non-ASCII character is itself
		_, size := utf8.DecodeRuneInString(src[i+1:])
		return src[i+1 : i+1+size], 1 + size, nil
	}
	return `\` + string(c), 2, nil
}

// hexEscape translates \xH and \xHH.
func hexEscape(src string, i int, _ bool) (string, int, error) {
	j := i + 2
	for j < len(src) && j < i+4 && isHex(src[j]) {
		j++
	}
	if j == i+2 {
		return "", 0, fmt.Errorf("regexp %q: invalid \\x escape", src)
	}
	return `\x{` + src[i+2:j] + `}`, j - i, nil
}

// unicodeEscape translates \uHHHH and \u{H…}.
func unicodeEscape(src string, i int, _ bool) (string, int, error) {
	if i+2 < len(src) && src[i+2] == '{' {
		end := strings.IndexByte(src[i:], '}')
		if end < 0 {
			return "", 0, fmt.Errorf("regexp %q: invalid \\u{} escape", src)
		}
		return `\x{` + src[i+3:i+end] + `}`, end + 1, nil
	}
	if i+6 > len(src) || !isHex(src[i+2]) || !isHex(src[i+3]) || !isHex(src[i+4]) || !isHex(src[i+5]) {
		return "", 0, fmt.Errorf("regexp %q: invalid \\u escape", src)
	}
	return `\x{` + src[i+2:i+6] + `}`, 6, nil
}

// propertyEscape translates \p{Name}, \p{^Name} (Ruby's negation) and
// \P{Name}, with Onigmo's POSIX-style names.
func propertyEscape(src string, i int, _ bool) (string, int, error) {
	c := src[i+1]
	if i+2 >= len(src) || src[i+2] != '{' {
		return `\` + src[i+1:i+2], 2, nil
	}
	end := strings.IndexByte(src[i:], '}')
	if end < 0 {
		return "", 0, fmt.Errorf("regexp %q: invalid \\p escape", src)
	}
	name := src[i+3 : i+end]
	if strings.HasPrefix(name, "^") { // Ruby negation
		name = name[1:]
		if c == 'p' {
			c = 'P'
		} else {
			c = 'p'
		}
	}
	if g, ok := rubyPropertyNames[strings.ToLower(name)]; ok {
		name = g
	}
	return `\` + string(c) + "{" + name + "}", end + 1, nil
}

func octal(src string, i int) (string, int, error) {
	j := i + 1
	for j < len(src) && j < i+4 && src[j] >= '0' && src[j] <= '7' {
		j++
	}
	v, err := strconv.ParseUint(src[i+1:j], 8, 16)
	if err != nil {
		return "", 0, fmt.Errorf("regexp %q: invalid octal escape", src)
	}
	return fmt.Sprintf(`\x{%x}`, v), j - i, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// rubyClass translates the character class starting at src[i] ('[').
func rubyClass(src string, i int) (string, int, error) {
	var b strings.Builder
	b.WriteByte('[')
	j := i + 1
	if j < len(src) && src[j] == '^' {
		b.WriteByte('^')
		j++
	}
	first := true
	for j < len(src) {
		c := src[j]
		switch {
		case c == ']' && !first:
			b.WriteByte(']')
			return b.String(), j + 1 - i, nil
		case c == '[' && strings.HasPrefix(src[j:], "[:"):
			end := strings.Index(src[j:], ":]")
			if end < 0 {
				return "", 0, fmt.Errorf("regexp %q: unterminated [: class", src)
			}
			b.WriteString(src[j : j+end+2])
			j += end + 2
		case c == '[':
			return "", 0, fmt.Errorf("regexp %q: %w", src, &unsupportedError{"a nested character class [a[b]]", "list the characters in one class"})
		case c == '&' && strings.HasPrefix(src[j:], "&&"):
			return "", 0, fmt.Errorf("regexp %q: %w", src, &unsupportedError{"character class intersection &&", ""})
		case c == '\\':
			if j+1 >= len(src) {
				return "", 0, fmt.Errorf("regexp %q: unterminated character class", src)
			}
			out, adv, err := rubyEscape(src, j, true)
			if err != nil {
				return "", 0, err
			}
			b.WriteString(out)
			j += adv
		default:
			b.WriteByte(c)
			j++
		}
		first = false
	}
	return "", 0, fmt.Errorf("regexp %q: unterminated character class", src)
}

// rubyPropertyNames maps Onigmo's POSIX-style property names to the Unicode
// categories RE2 knows.
var rubyPropertyNames = map[string]string{
	"alpha": "L", "digit": "Nd", "upper": "Lu", "lower": "Ll", "punct": "P", "cntrl": "Cc", "space": "Z",
}
