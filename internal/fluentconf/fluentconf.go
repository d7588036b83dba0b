package fluentconf

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/marutalog/maruta/internal/config"
)

// Convert turns a fluent.conf into maruta YAML. file names the input in
// error messages, which give file:line of the directive or parameter at
// fault. "#{ENV['X']}" becomes ${X}, resolved when the YAML is loaded.
func Convert(file string, data []byte) ([]byte, error) {
	root, err := parse(file, data)
	if err != nil {
		return nil, err
	}
	c := &converter{
		p:        &parser{file: file},
		file:     file,
		sources:  ylist(),
		pipeline: ylist(),
		outputs:  ylist(),
		errOuts:  ylist(),
		names:    map[string]bool{},
	}
	if err := c.run(root); err != nil {
		return nil, err
	}
	return c.yaml(), nil
}

type converter struct {
	p        *parser
	file     string
	logLevel string
	logFmt   string
	http     string
	httpNote []string
	sources  *ynode
	pipeline *ynode
	outputs  *ynode
	errOuts  *ynode
	// terminal holds the patterns of the <match> directives seen so far
	// that end an event's journey (outputs), for exclude.
	terminal   []string
	parseSteps int
	errorLabel bool
	names      map[string]bool
}

func (c *converter) errorf(line int, format string, args ...any) error {
	return c.p.errorf(line, format, args...)
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func (c *converter) where(line int) string { return sprintf("%s:%d", c.file, line) }

func (c *converter) run(root *element) error {
	for _, e := range root.elems {
		var err error
		switch e.name {
		case "source":
			err = c.source(e)
		case "filter":
			err = c.filter(e)
		case "match":
			err = c.match(e, false)
		case "system":
			err = c.system(e)
		case "label":
			err = c.label(e)
		default:
			err = c.errorf(e.line, "<%s> is not supported (supported: <source>, <filter>, <match>, <system>, <label @ERROR>)", e.name)
		}
		if err != nil {
			return err
		}
	}
	if c.sources.items == nil {
		return c.errorf(1, "no <source> @type forward: maruta receives events with the Forward protocol only")
	}
	if len(c.outputs.items)+len(c.errOuts.items) == 0 {
		return c.errorf(1, "no <match> with an output: events would go nowhere")
	}
	return nil
}

func (c *converter) yaml() []byte {
	doc := ymap()
	var b strings.Builder
	fmt.Fprintf(&b, "# Converted from %s by `maruta convert`.\n", c.file)
	b.WriteString("# fluentd's routing is kept: filters and rewrite_tag_filter run in file order, the first\n")
	b.WriteString("# matching output wins. Comments mark parameters maruta handles differently.\n")
	if c.logLevel != "" {
		doc.sub("log").set("level", ystr(c.logLevel))
	}
	if c.logFmt == "json" {
		doc.sub("log").set("format", ystr("json"))
	}
	doc.set("data_dir", ybare("${MARUTA_DATA_DIR:-./maruta-data}"))
	if c.http != "" {
		h := ystr(c.http)
		h.comments = c.httpNote
		doc.sub("http").set("listen", h)
	} else {
		doc.sub("http").set("listen", ybare("${MARUTA_HTTP_LISTEN:-127.0.0.1:24220}"))
	}
	doc.set("sources", c.sources)
	if len(c.pipeline.items) > 0 {
		doc.set("pipeline", c.pipeline)
	}
	outs := ylist()
	outs.items = append(outs.items, c.errOuts.items...)
	if !c.errorLabel && c.parseSteps > 0 {
		n := ymap()
		n.comment("fluentd logs and drops records its parser filter cannot parse when there is no")
		n.comment("<label @ERROR>. maruta sends them to the error route (tag maruta.error.<tag>); this output")
		n.comment("discards them the same way (counted). Replace it with a real output to keep them.")
		n.set("type", ystr("null"))
		n.set("name", ystr(c.uniqueName("parse_errors")))
		n.set("match", ystr("maruta.error.**"))
		outs.add(n)
	}
	outs.items = append(outs.items, c.outputs.items...)
	doc.set("outputs", outs)
	doc.write(&b, 0)
	return []byte(b.String())
}

var nameUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func (c *converter) uniqueName(base string) string {
	base = strings.Trim(nameUnsafe.ReplaceAllString(base, "_"), "_")
	if base == "" || !(base[0] >= 'A' && base[0] <= 'Z' || base[0] >= 'a' && base[0] <= 'z' || base[0] >= '0' && base[0] <= '9') {
		base = "out_" + base
	}
	name := base
	for i := 2; c.names[name]; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	c.names[name] = true
	return name
}

// common reads the parameters every plugin has: @id (the maruta name),
// @log_level (noted), @label (unsupported).
func (c *converter) common(e *element, n *ynode, what string, nameKey bool) error {
	e.allow("@type", "type", "@id", "@log_level", "log_level")
	if p, ok := e.get("@label"); ok {
		return c.errorf(p.line, "%s: @label routing is not supported (maruta has one pipeline; <label @ERROR> is supported)", what)
	}
	if p, ok := e.get("@id"); ok && nameKey {
		n.set("name", ystr(c.uniqueName(p.val)))
	}
	for _, k := range []string{"@log_level", "log_level"} {
		if p, ok := e.get(k); ok {
			n.comment("%s %s: maruta has one log level (log.level), not one per plugin.", k, p.val)
		}
	}
	return nil
}

func (c *converter) system(e *element) error {
	e.used = true
	e.allow("log_level", "suppress_repeated_stacktrace", "without_source", "rpc_endpoint", "process_name", "enable_get_dump")
	if p, ok := e.get("log_level"); ok {
		switch p.val {
		case "trace", "debug":
			c.logLevel = "debug"
		case "info":
			c.logLevel = "info"
		case "warn":
			c.logLevel = "warn"
		case "error", "fatal":
			c.logLevel = "error"
		default:
			return c.errorf(p.line, "<system>: log_level %q is not one of trace, debug, info, warn, error, fatal", p.val)
		}
	}
	for _, k := range []string{"suppress_repeated_stacktrace", "process_name", "enable_get_dump"} {
		e.get(k) // no equivalent and no effect on events
	}
	for _, k := range []string{"without_source", "rpc_endpoint"} {
		if p, ok := e.get(k); ok {
			return c.errorf(p.line, "<system>: %s is not supported", k)
		}
	}
	e.allowElems("log")
	for _, l := range e.children("log") {
		l.allow("format", "time_format")
		if p, ok := l.get("format"); ok {
			if p.val != "json" && p.val != "text" {
				return c.errorf(p.line, "<system><log>: format %q is not json or text", p.val)
			}
			c.logFormat(p.val)
		}
		l.get("time_format")
		if err := l.check(c.p, "<system><log>"); err != nil {
			return err
		}
	}
	return e.check(c.p, "<system>")
}

func (c *converter) logFormat(f string) { c.logFmt = f }

func (c *converter) label(e *element) error {
	e.used = true
	if e.arg != "@ERROR" {
		return c.errorf(e.line, "<label %s> is not supported: maruta has one pipeline; only <label @ERROR> (the error route) is", e.arg)
	}
	c.errorLabel = true
	for _, m := range e.elems {
		switch m.name {
		case "match":
			if err := c.match(m, true); err != nil {
				return err
			}
		case "filter":
			return c.errorf(m.line, "<label @ERROR>: <filter> is not supported (error-route events skip the pipeline); only <match> is")
		default:
			return c.errorf(m.line, "<label @ERROR>: <%s> is not supported (only <match> is)", m.name)
		}
	}
	return nil
}

func (c *converter) source(e *element) error {
	e.used = true
	typ, line := e.typ()
	what := e.describe(typ)
	switch typ {
	case "forward":
		return c.forwardSource(e, what)
	case "monitor_agent", "prometheus":
		e.allow("bind", "port", "@type", "type", "@id", "tag", "emit_interval", "include_config", "include_retry", "metrics_path", "aggregated_metrics_path")
		bind, _ := e.str("bind")
		port, ok := e.str("port")
		if !ok {
			port = map[string]string{"monitor_agent": "24220", "prometheus": "24231"}[typ]
		}
		if bind == "" {
			bind = "0.0.0.0"
		}
		for _, k := range []string{"@id", "tag", "emit_interval", "include_config", "include_retry", "metrics_path", "aggregated_metrics_path"} {
			e.get(k)
		}
		if c.http != "" {
			return c.errorf(line, "%s: maruta has one HTTP endpoint; it is already taken by an earlier <source>", what)
		}
		c.http = hostPort(bind, port)
		c.httpNote = []string{sprintf("%s %s: maruta serves /metrics (Prometheus, maruta_*) and /healthz here.", c.where(e.line), what)}
		return e.check(c.p, what)
	case "":
		return c.errorf(line, "<source> needs @type")
	}
	return c.errorf(line, "%s is not supported (supported sources: forward; monitor_agent and prometheus become maruta's HTTP endpoint)", what)
}

func hostPort(host, port string) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

func (c *converter) forwardSource(e *element, what string) error {
	n := ymap()
	n.comment("%s %s", c.where(e.line), what)
	n.set("type", ystr("forward"))
	if err := c.common(e, n, what, true); err != nil {
		return err
	}
	e.allow("port", "bind", "chunk_size_limit", "chunk_size_warn_limit", "source_address_key", "source_hostname_key",
		"linger_timeout", "skip_invalid_event", "resolve_hostname", "send_keepalive_packet", "deny_keepalive", "add_tag_prefix", "blocking_timeout")
	e.allowElems("security", "transport")
	bind, _ := e.str("bind")
	if bind == "" {
		bind = "0.0.0.0"
	}
	port, ok := e.str("port")
	if !ok {
		port = "24224"
	}
	if addr := hostPort(bind, port); len(c.sources.items) == 0 && !strings.Contains(addr, "${") {
		// Like the embedded default, the first listener can be moved
		// without editing the file (containers, tests).
		n.set("listen", ybare("${MARUTA_LISTEN:-"+addr+"}"))
	} else {
		n.set("listen", ystr(hostPort(bind, port)))
	}
	if v, ok := e.str("chunk_size_limit"); ok {
		n.set("chunk_size_limit", ybare(sizeText(v)))
	}
	if v, ok := e.str("source_address_key"); ok {
		n.set("source_address_key", ystr(v))
	}
	if v, ok := e.str("source_hostname_key"); ok {
		n.set("source_hostname_key", ystr(v))
	}
	for _, k := range []string{"chunk_size_warn_limit", "linger_timeout", "skip_invalid_event", "resolve_hostname", "send_keepalive_packet", "blocking_timeout"} {
		if p, ok := e.get(k); ok {
			n.comment("%s %s: no maruta equivalent; maruta counts and logs invalid requests and keeps connections as Docker expects.", k, p.val)
		}
	}
	for _, k := range []string{"deny_keepalive", "add_tag_prefix"} {
		if p, ok := e.get(k); ok {
			return c.errorf(p.line, "%s: %s is not supported", what, k)
		}
	}
	for _, s := range e.children("security") {
		sec := n.sub("security")
		s.allow("self_hostname", "shared_key", "user_auth", "allow_anonymous_source")
		s.allowElems("user")
		s.allowHost("self_hostname")
		if v, ok := s.str("self_hostname"); ok {
			if v == "${hostname}" {
				sec.comment("self_hostname #{Socket.gethostname}: maruta answers with its host name by default.")
			} else {
				sec.set("self_hostname", ystr(v))
			}
		}
		if v, ok := s.str("shared_key"); ok {
			sec.set("shared_key", ystr(v))
		}
		if p, ok := s.get("user_auth"); ok {
			b, err := c.boolean(p)
			if err != nil {
				return err
			}
			sec.set("user_auth", ybool(b))
		}
		if p, ok := s.get("allow_anonymous_source"); ok && p.val != "true" && p.val != "" {
			return c.errorf(p.line, "%s <security>: allow_anonymous_source false (and <client>) are not supported", what)
		}
		users := ylist()
		for _, u := range s.children("user") {
			u.allow("username", "password")
			un, _ := u.str("username")
			pw, _ := u.str("password")
			users.add(ymap().set("username", ystr(un)).set("password", ystr(pw)))
			if err := u.check(c.p, what+" <security><user>"); err != nil {
				return err
			}
		}
		if len(users.items) > 0 {
			sec.set("users", users)
		}
		if err := s.check(c.p, what+" <security>"); err != nil {
			return err
		}
	}
	for _, t := range e.children("transport") {
		if t.arg != "tls" {
			return c.errorf(t.line, "%s: <transport %s> is not supported (tls is)", what, t.arg)
		}
		tls := n.sub("tls")
		t.allow("cert_path", "private_key_path", "ca_path", "client_cert_auth", "version", "min_version", "max_version", "ciphers", "insecure")
		if v, ok := t.str("cert_path"); ok {
			tls.set("cert_file", ystr(v))
		}
		if v, ok := t.str("private_key_path"); ok {
			tls.set("key_file", ystr(v))
		}
		if v, ok := t.str("ca_path"); ok {
			tls.set("ca_file", ystr(v))
		}
		if p, ok := t.get("client_cert_auth"); ok {
			b, err := c.boolean(p)
			if err != nil {
				return err
			}
			if b {
				tls.set("client_auth", ystr("require"))
			}
		}
		for _, k := range []string{"version", "min_version", "max_version", "ciphers"} {
			if p, ok := t.get(k); ok {
				n.comment("<transport tls> %s %s: maruta uses TLS 1.2 or later with Go's default ciphers.", k, p.val)
			}
		}
		if p, ok := t.get("insecure"); ok && p.val == "true" {
			return c.errorf(p.line, "%s <transport tls>: insecure is not supported", what)
		}
		if err := t.check(c.p, what+" <transport tls>"); err != nil {
			return err
		}
	}
	if err := e.check(c.p, what); err != nil {
		return err
	}
	c.sources.add(n)
	return nil
}

func (c *converter) boolean(p *param) (bool, error) {
	switch p.val {
	case "true", "yes", "":
		return true, nil
	case "false", "no":
		return false, nil
	}
	if p.env {
		return false, c.errorf(p.line, "%s: an environment variable cannot set a true/false parameter here; write true or false", p.key)
	}
	return false, c.errorf(p.line, "%s %q is not true or false", p.key, p.val)
}

// sizeText and durationText pass fluentd's spellings through: maruta's
// loader reads the same units (k/m/g/t sizes, s/m/h/d durations, plain
// numbers).
func sizeText(v string) string {
	if _, err := config.ParseSize(v); err == nil {
		n, _ := config.ParseSize(v)
		return config.FormatSize(n)
	}
	return v
}

func durationText(v string) string {
	if d, err := config.ParseDuration(v); err == nil {
		return config.FormatDuration(d)
	}
	return v
}
