package router

import (
	"fmt"
	"unicode/utf8"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/ruby"
)

// grepStep is fluentd's filter_grep: an event is kept only when every
// regexp rule matches its key's value (Ruby's to_s; a missing key is ""),
// and dropped when any exclude rule matches.
type grepStep struct {
	regexp  []grepRule
	exclude []grepRule
}

type grepRule struct {
	key accessor
	re  *ruby.Regexp
}

func newGrepStep(cfg *config.Config, path string, c *config.GrepStep) (*grepStep, error) {
	g := &grepStep{}
	var errs config.Errors
	compile := func(kind string, rules []config.GrepRule) []grepRule {
		var out []grepRule
		for i, rc := range rules {
			rp := fmt.Sprintf("%s.%s[%d]", path, kind, i)
			var r grepRule
			var err error
			if r.key, err = parseAccessor(rc.Key); err != nil {
				errs = append(errs, cfg.Errorf(rp+".key", "%v", err))
			}
			if r.re, err = ruby.CompileRegexpLiteral(rc.Pattern); err != nil {
				errs = append(errs, cfg.Errorf(rp+".pattern", "%v", err))
			}
			out = append(out, r)
		}
		return out
	}
	g.regexp = compile("regexp", c.Regexp)
	g.exclude = compile("exclude", c.Exclude)
	if errs != nil {
		return nil, errs
	}
	return g, nil
}

func (g *grepStep) matches(st *state, rec []byte, r *grepRule) bool {
	var text []byte
	if raw, ok := r.key.get(rec); ok {
		text = valueText(st, raw)
	}
	if !utf8.Valid(text) {
		st.tmp = ruby.AppendScrub(st.tmp[:0], text)
		text = st.tmp
	}
	return r.re.Match(text)
}

func (g *grepStep) apply(r *Router, st *state, s *stepRT, p *plan, ev *event.Event, hops int) (verdict, string) {
	for i := range g.regexp {
		if !g.matches(st, ev.Record, &g.regexp[i]) {
			st.count(s.idx, cGrepDropped)
			if r.debug {
				s.expectLog.Debug(r.log, "grep: regexp rule did not match; event dropped", "step", s.name, "tag", p.tag, "key", g.regexp[i].key.src)
			}
			return vDrop, ""
		}
	}
	for i := range g.exclude {
		if g.matches(st, ev.Record, &g.exclude[i]) {
			st.count(s.idx, cGrepDropped)
			if r.debug {
				s.expectLog.Debug(r.log, "grep: exclude rule matched; event dropped", "step", s.name, "tag", p.tag, "key", g.exclude[i].key.src)
			}
			return vDrop, ""
		}
	}
	return vPass, ""
}
