package ruby

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
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

// translateRuby rewrites a Ruby pattern into RE2 syntax.
func translateRuby(src string) (string, error) {
	var b strings.Builder
	fail := func(what, hint string) (string, error) {
		return "", fmt.Errorf("regexp %q: %w", src, &unsupportedError{what, hint})
	}
	i := 0
	n := len(src)
	afterAtom := false // a quantifier may follow
	for i < n {
		c := src[i]
		switch c {
		case '\\':
			if i+1 >= n {
				return "", fmt.Errorf("regexp %q: ends with a lone '\\'", src)
			}
			out, adv, err := rubyEscape(src, i, false)
			if err != nil {
				return "", err
			}
			b.WriteString(out)
			i += adv
			afterAtom = true
		case '[':
			out, adv, err := rubyClass(src, i)
			if err != nil {
				return "", err
			}
			b.WriteString(out)
			i += adv
			afterAtom = true
		case '(':
			rest := src[i:]
			switch {
			case strings.HasPrefix(rest, "(?#"):
				j := strings.IndexByte(rest, ')')
				if j < 0 {
					return "", fmt.Errorf("regexp %q: unterminated (?# comment", src)
				}
				i += j + 1
				continue
			case strings.HasPrefix(rest, "(?="), strings.HasPrefix(rest, "(?!"):
				return fail("lookahead "+rest[:3]+"…)", "")
			case strings.HasPrefix(rest, "(?<="), strings.HasPrefix(rest, "(?<!"):
				return fail("lookbehind "+rest[:4]+"…)", "")
			case strings.HasPrefix(rest, "(?>"):
				return fail("atomic group (?>…)", "")
			case strings.HasPrefix(rest, "(?~"):
				return fail("absent operator (?~…)", "")
			case strings.HasPrefix(rest, "(?("):
				return fail("conditional group (?(…)…)", "")
			case strings.HasPrefix(rest, "(?<"):
				j := strings.IndexByte(rest, '>')
				if j < 0 {
					return "", fmt.Errorf("regexp %q: unterminated group name", src)
				}
				b.WriteString("(?P<" + rest[3:j] + ">")
				i += j + 1
			case strings.HasPrefix(rest, "(?'"):
				j := strings.IndexByte(rest[3:], '\'')
				if j < 0 {
					return "", fmt.Errorf("regexp %q: unterminated group name", src)
				}
				b.WriteString("(?P<" + rest[3:3+j] + ">")
				i += 3 + j + 1
			case strings.HasPrefix(rest, "(?"):
				// Flag group: (?imx-imx) or (?imx-imx:…). Ruby's m is RE2's s.
				j := 2
				on, off := "", ""
				neg := false
				for ; j < len(rest); j++ {
					f := rest[j]
					if f == ')' || f == ':' {
						break
					}
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
						return fail("extended mode (?x)", "remove the x flag and the white space it ignores")
					default:
						return "", fmt.Errorf("regexp %q: unknown group syntax %q", src, rest[:j+1])
					}
					if neg {
						off += string(f)
					} else {
						on += string(f)
					}
				}
				if j >= len(rest) {
					return "", fmt.Errorf("regexp %q: unterminated group", src)
				}
				flags := on
				if off != "" {
					flags += "-" + off
				}
				if rest[j] == ')' {
					if flags != "" {
						b.WriteString("(?" + flags + ")")
					}
					i += j + 1
					afterAtom = false
					continue
				}
				if flags == "" {
					b.WriteString("(?:")
				} else {
					b.WriteString("(?" + flags + ":")
				}
				i += j + 1
			default:
				b.WriteByte('(')
				i++
			}
			afterAtom = false
			continue
		case '*', '+', '?':
			b.WriteByte(c)
			i++
			if i < n && src[i] == '+' && afterAtom {
				return fail("possessive quantifier "+string(c)+"+", "drop the second '+'")
			}
			if i < n && src[i] == '?' { // lazy
				b.WriteByte('?')
				i++
			}
			afterAtom = false
			continue
		case '{':
			// {n}, {n,}, {n,m}, and Ruby's {,m}; anything else is literal.
			j := i + 1
			for j < n && (src[j] >= '0' && src[j] <= '9' || src[j] == ',') {
				j++
			}
			inner := src[i+1 : j]
			if j < n && src[j] == '}' && inner != "" && inner != "," && strings.Count(inner, ",") <= 1 {
				if strings.HasPrefix(inner, ",") {
					inner = "0" + inner
				}
				b.WriteString("{" + inner + "}")
				i = j + 1
				if i < n && src[i] == '+' {
					return fail("possessive quantifier {…}+", "")
				}
				if i < n && src[i] == '?' {
					b.WriteByte('?')
					i++
				}
				afterAtom = false
				continue
			}
			b.WriteString(`\{`)
			i++
		default:
			b.WriteByte(c)
			i++
		}
		afterAtom = c != '(' && c != '|'
	}
	return b.String(), nil
}

// rubyEscape translates the escape at src[i] ('\'); inClass selects the
// character-class form. It returns the RE2 text and how many bytes it used.
func rubyEscape(src string, i int, inClass bool) (string, int, error) {
	c := src[i+1]
	unsupported := func(what string) (string, int, error) {
		return "", 0, fmt.Errorf("regexp %q: %w", src, &unsupportedError{what, ""})
	}
	switch {
	case c >= '1' && c <= '9':
		if inClass { // octal in a class
			return octal(src, i)
		}
		return unsupported("backreference \\" + string(c))
	case c == '0':
		return octal(src, i)
	case c == 'k' && i+2 < len(src) && (src[i+2] == '<' || src[i+2] == '\''):
		return unsupported("named backreference \\k")
	case c == 'g' && i+2 < len(src) && (src[i+2] == '<' || src[i+2] == '\''):
		return unsupported("subexpression call \\g")
	case c == 'G', c == 'K', c == 'X':
		return unsupported("\\" + string(c))
	case c == 'h':
		if inClass {
			return "0-9a-fA-F", 2, nil
		}
		return "[0-9a-fA-F]", 2, nil
	case c == 'H':
		if inClass {
			return unsupported("\\H inside a character class")
		}
		return "[^0-9a-fA-F]", 2, nil
	case c == 'Z':
		if inClass {
			return "Z", 2, nil
		}
		return `(?:\n?\z)`, 2, nil
	case c == 'R':
		if inClass {
			return unsupported("\\R inside a character class")
		}
		return `(?:\r\n|[\n\v\f\r\x{85}\x{2028}\x{2029}])`, 2, nil
	case c == 'e':
		return `\x1b`, 2, nil
	case c == 'a':
		return `\x07`, 2, nil
	case c == 'c' || c == 'C' || c == 'M':
		return unsupported("control escape \\" + string(c))
	case c == 'x':
		j := i + 2
		for j < len(src) && j < i+4 && isHex(src[j]) {
			j++
		}
		if j == i+2 {
			return "", 0, fmt.Errorf("regexp %q: invalid \\x escape", src)
		}
		return `\x{` + src[i+2:j] + `}`, j - i, nil
	case c == 'u':
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
	case c == 'p' || c == 'P':
		if i+2 < len(src) && src[i+2] == '{' {
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
		return `\` + src[i+1:i+2], 2, nil
	case strings.IndexByte("dDwWsSbBAztnrfv", c) >= 0:
		if inClass && (c == 'b' || c == 'B' || c == 'A' || c == 'z') {
			if c == 'b' {
				return `\x08`, 2, nil
			}
			return string(c), 2, nil
		}
		return `\` + string(c), 2, nil
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		// Ruby reads an unknown letter escape as the letter itself.
		return string(c), 2, nil
	case c >= 0x80:
		return string(c), 2, nil
	}
	return `\` + string(c), 2, nil
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
