package router

import (
	"fmt"
	"unicode/utf8"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/internal/ruby"
)

// rewriteStep is fluent-plugin-rewrite-tag-filter. Rules are tried in order
// and the first hit wins. A rule reads its key (top level or a $.a.b path)
// as text (Ruby's to_s; invalid UTF-8 scrubbed to '?' before matching, as
// the plugin does); an empty value never matches a normal rule. An inverted
// rule hits when the pattern does not match, and its tag gets no $N.
type rewriteStep struct {
	rules         []rewriteRule
	capitalize    bool
	removePrefix  string
	hostname      string
	unmatchedDrop bool
	maxHops       int
}

type rewriteRule struct {
	key    accessor
	topKey string
	isTop  bool
	re     *ruby.Regexp
	invert bool
	tmpl   tagTemplate
}

func newRewriteStep(cfg *config.Config, path string, c *config.RewriteTagStep, hostname string) (*rewriteStep, error) {
	s := &rewriteStep{
		capitalize:    c.CapitalizeRegexBackreference,
		removePrefix:  c.RemoveTagPrefix,
		hostname:      hostname,
		unmatchedDrop: c.Unmatched == config.UnmatchedDrop,
		maxHops:       c.MaxHops,
	}
	if c.Hostname != "" {
		s.hostname = c.Hostname
	}
	if s.maxHops <= 0 {
		s.maxHops = config.DefaultMaxHops
	}
	var errs config.Errors
	for i, rc := range c.Rules {
		rp := fmt.Sprintf("%s.rules[%d]", path, i)
		var rule rewriteRule
		var err error
		if rule.key, err = parseAccessor(rc.Key); err != nil {
			errs = append(errs, cfg.Errorf(rp+".key", "%v", err))
			continue
		}
		rule.topKey, rule.isTop = rule.key.topLevel()
		if rule.re, err = ruby.CompileRegexpLiteral(rc.Pattern); err != nil {
			errs = append(errs, cfg.Errorf(rp+".pattern", "%v", err))
		}
		if rule.tmpl, err = compileTagTemplate(rc.Tag); err != nil {
			errs = append(errs, cfg.Errorf(rp+".tag", "%v", err))
		}
		rule.invert = rc.Invert
		s.rules = append(s.rules, rule)
	}
	if errs != nil {
		return nil, errs
	}
	return s, nil
}

func (w *rewriteStep) apply(r *Router, st *state, s *stepRT, p *plan, ev *event.Event, hops int) (verdict, string) {
	tc := &p.tc
	if p.prefixed != nil && p.prefixed[s.idx] != nil {
		tc = p.prefixed[s.idx]
	} else if w.hostname != r.hostname {
		c := *tc
		c.hostname = w.hostname
		tc = &c
	}
	for i := range w.rules {
		rule := &w.rules[i]
		var raw []byte
		var ok bool
		if rule.isTop {
			raw, ok, _ = msgpack.MapGet(ev.Record, rule.topKey, maxDepth)
		} else {
			raw, ok = rule.key.get(ev.Record)
		}
		var text []byte
		if ok {
			text = valueText(st, raw)
		}
		if len(text) == 0 && !rule.invert {
			continue
		}
		if !utf8.Valid(text) {
			st.tmp = ruby.AppendScrub(st.tmp[:0], text)
			text = st.tmp
		}
		var loc []int
		if rule.invert {
			if rule.re.Match(text) {
				continue
			}
		} else if rule.tmpl.backrefs {
			if loc = rule.re.FindSubmatchIndex(text); loc == nil {
				continue
			}
		} else if !rule.re.Match(text) {
			continue
		}
		st.tagBuf, st.scratch = rule.tmpl.expand(st.tagBuf[:0], st.scratch, text, loc, w.capitalize, tc)
		if string(st.tagBuf) == p.tag {
			break // the plugin does not re-emit an unchanged tag
		}
		if hops >= w.maxHops {
			st.count(s.idx, cLoopCut)
			if ok, sup := s.dropLog.Allow(); ok {
				r.log.Warn("rewrite_tag: event re-tagged more than max_hops times; dropped (a rewrite loop?)",
					"step", s.name, "tag", p.tag, "new_tag", string(st.tagBuf), "max_hops", w.maxHops, "suppressed", sup)
			}
			return vDrop, ""
		}
		st.count(s.idx, cRewrite)
		np := r.plans.getBytes(st, st.tagBuf)
		return vRetag, np.tag
	}
	if w.unmatchedDrop {
		st.count(s.idx, cUnmatchedDrop)
		if r.debug {
			s.expectLog.Debug(r.log, "rewrite_tag: no rule matched; event dropped (unmatched: drop)", "step", s.name, "tag", p.tag)
		}
		return vDrop, ""
	}
	st.count(s.idx, cUnmatchedKeep)
	return vPass, ""
}

// valueText returns the value as Ruby's to_s would print it: strings
// without copying, other types formatted into st.text.
func valueText(st *state, raw []byte) []byte {
	switch msgpack.Peek(raw) {
	case msgpack.Str, msgpack.Bin:
		b, _, _, err := msgpack.ReadBytes(raw)
		if err != nil {
			return nil
		}
		return b
	}
	st.text = ruby.AppendToS(st.text[:0], raw)
	return st.text
}
