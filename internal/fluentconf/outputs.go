package fluentconf

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/marutalog/maruta/internal/config"
)

// output converts a <match> (or a <store>, or forest's <template>) into a
// maruta output. forest says the parameters may hold forest's per-tag
// placeholders.
func (c *converter) output(e *element, typ, what string, store, forest bool) (*ynode, error) {
	n := ymap()
	n.comment("%s %s", c.where(e.line), what)
	e.typ() // read
	var err error
	switch typ {
	case "copy":
		if store {
			return nil, c.errorf(e.line, "%s: a copy inside a copy is not supported", what)
		}
		err = c.copyOut(e, n, what, forest)
	case "forest":
		if store || forest {
			return nil, c.errorf(e.line, "%s: forest inside copy or forest is not supported", what)
		}
		return c.forest(e, what)
	case "s3":
		err = c.s3Out(e, n, what, forest)
	case "file":
		err = c.fileOut(e, n, what, forest)
	case "stdout":
		n.set("type", ystr("stdout"))
		e.allow("output_type", "format")
		e.allowElems("format", "inject")
		for _, k := range []string{"output_type", "format"} {
			if p, ok := e.get(k); ok {
				n.comment("%s %s: maruta prints JSON lines.", k, p.val)
			}
		}
		for _, s := range e.children("format") {
			s.used = true
			for _, p := range s.params {
				p.used = true
			}
			n.comment("<format>: maruta prints JSON lines.")
		}
		if len(e.children("inject")) > 0 {
			return nil, c.errorf(e.line, "%s: <inject> is not supported", what)
		}
	case "null":
		n.set("type", ystr("null"))
		e.allow("never_flush")
		e.get("never_flush")
		e.allowElems("buffer")
		for _, b := range e.children("buffer") {
			b.used = true
			for _, p := range b.params {
				p.used = true
			}
		}
	case "forward":
		err = c.forwardOut(e, n, what)
	case "tdlog":
		err = c.tdlogOut(e, n, what, forest)
	case "cloudwatch_logs":
		err = c.cloudwatchOut(e, n, what, forest)
	case "papertrail":
		err = c.papertrailOut(e, n, what)
	case "remote_syslog":
		err = c.remoteSyslogOut(e, n, what, forest)
	case "relabel":
		return nil, c.errorf(e.line, "%s is not supported: maruta has one pipeline (no labels besides @ERROR)", what)
	default:
		return nil, c.errorf(e.line, "%s is not supported (supported outputs: rewrite_tag_filter, copy, forest, s3, file, stdout, null, forward, tdlog, cloudwatch_logs, papertrail, remote_syslog)", what)
	}
	if err != nil {
		return nil, err
	}
	if err := c.common(e, n, what, true); err != nil {
		return nil, err
	}
	moveNameSecond(n)
	if err := e.check(c.p, what); err != nil {
		return nil, err
	}
	return n, nil
}

func moveNameSecond(n *ynode) {
	for i, k := range n.keys {
		if k == "name" && i > 1 {
			kk, v := n.keys[i], n.vals[i]
			copy(n.keys[2:i+1], n.keys[1:i])
			copy(n.vals[2:i+1], n.vals[1:i])
			n.keys[1], n.vals[1] = kk, v
			return
		}
	}
}

var forestPH = regexp.MustCompile(`__TAG__|__TAG_PARTS\[[^\]]*\]__|__ESCAPED_TAG__|__HOSTNAME__|\$\{escaped_tag\}|\$\{tag_parts\[[^\]]*\]\}|\$\{hostname\}|\$\{tag\}`)

// checkForestParams rejects forest placeholders in parameters other than
// paths and destination names: forest gave each tag its own value there,
// which maruta cannot.
func (c *converter) checkForestParams(e *element, what string) error {
	for _, p := range e.params {
		switch p.key {
		case "path", "s3_object_key_format", "buffer_path":
			continue
		}
		if slices.Contains(nameParams, p.key) {
			continue
		}
		if m := forestPH.FindString(p.val); m != "" {
			return c.errorf(p.line, "%s: %s in %s is not supported; maruta resolves per-tag placeholders only in output paths", what, m, p.key)
		}
	}
	for _, s := range e.elems {
		if err := c.checkForestParams(s, what); err != nil {
			return err
		}
	}
	return nil
}

// pathPlaceholders converts the per-tag placeholders of a path for maruta,
// which resolves ${tag} and ${tag_parts[N]} per chunk: forest's __TAG__,
// __TAG_PARTS[N]__ and ${tag_parts[N]}, and fluentd v1's buffer
// placeholders ${tag} and ${tag[N]}.
func (c *converter) pathPlaceholders(p *param, what string, forest bool) (string, error) {
	v := p.val
	var bad string
	v = forestPH.ReplaceAllStringFunc(v, func(m string) string {
		switch {
		case m == "__TAG__" || m == "${tag}":
			return "${tag}"
		case strings.HasPrefix(m, "__TAG_PARTS[") || strings.HasPrefix(m, "${tag_parts["):
			open := strings.IndexByte(m, '[')
			idx := m[open+1 : strings.IndexByte(m, ']')]
			if _, err := strconv.Atoi(idx); err != nil {
				if bad == "" {
					bad = m + " (a range of tag parts)"
				}
				return m
			}
			return "${tag_parts[" + idx + "]}"
		}
		if bad == "" {
			bad = m
		}
		return m
	})
	v = v1TagPart.ReplaceAllString(v, "$${tag_parts[$1]}")
	if bad != "" {
		return "", c.errorf(p.line, "%s: %s in %s is not supported; maruta output paths take ${tag} and ${tag_parts[N]}", what, bad, p.key)
	}
	if !forest && (strings.Contains(p.val, "__TAG") || strings.Contains(p.val, "${tag_parts")) {
		return "", c.errorf(p.line, "%s: %s uses forest placeholders outside <match> @type forest (fluentd would write them literally)", what, p.key)
	}
	return v, nil
}

var v1TagPart = regexp.MustCompile(`\$\{tag\[(-?[0-9]+)\]\}`)

// forest: the <template>'s subtype becomes the output; maruta resolves the
// per-tag path placeholders per chunk, which is what forest was for.
func (c *converter) forest(e *element, what string) (*ynode, error) {
	e.allow("@type", "type", "subtype", "@id", "@log_level", "remove_prefix", "add_prefix", "hostname", "escape_tag_separator")
	e.allowElems("template")
	sub, ok := e.str("subtype")
	if !ok {
		return nil, c.errorf(e.line, "%s: subtype is required", what)
	}
	for _, k := range []string{"remove_prefix", "add_prefix", "hostname"} {
		if p, ok := e.get(k); ok {
			return nil, c.errorf(p.line, "%s: %s is not supported", what, k)
		}
	}
	e.get("escape_tag_separator")
	for _, cs := range e.elems {
		if cs.name == "case" {
			return nil, c.errorf(cs.line, "%s: <case> is not supported; write one <match> per case before this one", what)
		}
	}
	tpls := e.children("template")
	if len(tpls) != 1 {
		return nil, c.errorf(e.line, "%s: one <template> is required", what)
	}
	t := tpls[0]
	if err := c.checkForestParams(t, what+" <template>"); err != nil {
		return nil, err
	}
	// The template is the subtype's configuration.
	t.params = append([]*param{{key: "@type", val: sub, line: t.line}}, t.params...)
	t.name = "template"
	n, err := c.output(t, sub, sprintf("<template> (forest subtype %s)", sub), false, true)
	if err != nil {
		return nil, err
	}
	n.comments = append([]string{sprintf("%s %s: forest's per-tag outputs become one output whose paths maruta resolves per tag.", c.where(e.line), what)}, n.comments...)
	if p, ok := e.get("@id"); ok && n.get("name") == nil {
		n.set("name", ystr(c.uniqueName(p.val)))
		moveNameSecond(n)
	}
	if err := e.check(c.p, what); err != nil {
		return nil, err
	}
	return n, nil
}

func (c *converter) copyOut(e *element, n *ynode, what string, forest bool) error {
	n.set("type", ystr("copy"))
	e.allow("deep_copy", "copy_mode")
	e.allowElems("store")
	for _, k := range []string{"deep_copy", "copy_mode"} {
		if p, ok := e.get(k); ok {
			n.comment("%s %s: every store gets the same records; copies never share state.", k, p.val)
		}
	}
	stores := ylist()
	for _, s := range e.children("store") {
		if s.arg != "" {
			return c.errorf(s.line, "%s: <store %s> is not supported: maruta's copy is all-or-nothing (a failing store fails the batch, which the client retries)", what, s.arg)
		}
		typ, line := s.typ()
		if typ == "" {
			return c.errorf(line, "%s: <store> needs @type", what)
		}
		sn, err := c.output(s, typ, sprintf("<store> @type %s", typ), true, forest)
		if err != nil {
			return err
		}
		stores.add(sn)
	}
	if len(stores.items) == 0 {
		return c.errorf(e.line, "%s: no <store>", what)
	}
	n.set("stores", stores)
	return nil
}

var keyFormatPH = regexp.MustCompile(`%\{[a-z_]+\}`)

func (c *converter) s3Out(e *element, n *ynode, what string, forest bool) error {
	n.set("type", ystr("s3"))
	e.allow("s3_bucket", "s3_region", "s3_endpoint", "force_path_style", "aws_key_id", "aws_sec_key", "path", "s3_object_key_format",
		"time_slice_format", "store_as", "format", "include_time_key", "time_key", "time_format", "include_tag_key", "tag_key",
		"utc", "localtime", "timezone", "use_server_side_encryption", "ssekms_key_id", "storage_class", "auto_create_bucket",
		"check_apikey_on_start", "check_bucket", "check_object", "hex_random_length", "index_format", "compute_checksums",
		"signature_version", "warn_for_delay", "ssl_verify_peer", "reduced_redundancy", "acl", "proxy_uri", "buffer_path", "buffer_type")
	e.allowElems("buffer", "format", "instance_profile_credentials", "web_identity_credentials", "assume_role_credentials", "inject")
	bucket, ok := e.str("s3_bucket")
	if !ok {
		return c.errorf(e.line, "%s: s3_bucket is required", what)
	}
	n.set("bucket", ystr(bucket))
	if v, ok := e.str("s3_region"); ok {
		n.set("region", ystr(v))
	}
	if v, ok := e.str("s3_endpoint"); ok {
		n.set("endpoint", ystr(v))
	}
	if p, ok := e.get("force_path_style"); ok {
		b, err := c.boolean(p)
		if err != nil {
			return err
		}
		n.set("force_path_style", ybool(b))
	}
	if v, ok := e.str("aws_key_id"); ok {
		n.set("access_key_id", ystr(v))
	}
	if v, ok := e.str("aws_sec_key"); ok {
		n.set("secret_access_key", ystr(v))
	}
	for _, s := range []string{"instance_profile_credentials", "web_identity_credentials"} {
		for _, x := range e.children(s) {
			x.used = true
			for _, p := range x.params {
				p.used = true
			}
			n.comment("<%s>: maruta uses the AWS SDK's default credential chain (environment, web identity, ECS, EKS, IMDSv2).", s)
		}
	}
	if len(e.children("assume_role_credentials")) > 0 {
		return c.errorf(e.line, "%s: <assume_role_credentials> is not supported; give the role through the SDK's environment (AWS_ROLE_ARN with web identity, or a profile)", what)
	}
	// Encoding: always Parquet on S3.
	format := "out_file"
	if v, ok := e.str("format"); ok {
		format = v
	}
	for _, f := range e.children("format") {
		ft, _ := f.typ()
		format = ft
		for _, p := range f.params {
			p.used = true
		}
	}
	store := "gzip"
	if v, ok := e.str("store_as"); ok {
		store = v
	}
	extra := ""
	for _, k := range []string{"include_time_key", "time_key", "time_format", "utc", "localtime", "timezone", "tag_key"} {
		if p, ok := e.get(k); ok {
			extra += ", " + k + " " + p.val
		}
	}
	n.comment("format %s, store_as %s%s: maruta writes Parquet (zstd), the record's fields as columns and", format, store, extra)
	n.comment("the event time as a UTC timestamp column \"time\", for Athena; time slices are UTC.")
	if p, ok := e.get("include_tag_key"); ok && p.val != "false" {
		return c.errorf(p.line, "%s: include_tag_key is not supported; add a record step (set: [{key: tag, value: ${tag}}]) before the output", what)
	}
	if len(e.children("inject")) > 0 {
		return c.errorf(e.line, "%s: <inject> is not supported; use a record step", what)
	}
	if p, ok := e.get("use_server_side_encryption"); ok {
		n.set("server_side_encryption", ystr(p.val))
	}
	if v, ok := e.str("ssekms_key_id"); ok {
		n.set("sse_kms_key_id", ystr(v))
	}
	if v, ok := e.str("storage_class"); ok {
		n.set("storage_class", ystr(v))
	}
	if p, ok := e.get("reduced_redundancy"); ok && p.val == "true" {
		n.set("storage_class", ystr("REDUCED_REDUNDANCY"))
	}
	for _, k := range []string{"acl", "proxy_uri"} {
		if p, ok := e.get(k); ok {
			return c.errorf(p.line, "%s: %s is not supported", what, k)
		}
	}
	for _, k := range []string{"auto_create_bucket", "check_apikey_on_start", "check_bucket", "check_object", "hex_random_length",
		"index_format", "compute_checksums", "signature_version", "warn_for_delay", "ssl_verify_peer"} {
		if p, ok := e.get(k); ok {
			n.comment("%s %s: no maruta equivalent (maruta never creates buckets; object keys are deterministic).", k, p.val)
		}
	}
	// The key prefix: path, then the time slice as folders.
	prefix := ""
	if p, ok := e.get("path"); ok {
		v, err := c.pathPlaceholders(p, what, forest)
		if err != nil {
			return err
		}
		prefix = v
	}
	keyFormat := "%{path}%{time_slice}_%{index}.%{file_extension}"
	kp, hasKF := e.get("s3_object_key_format")
	if hasKF {
		keyFormat = kp.val
	}
	slice, err := c.timeSlice(e, "%Y%m%d%H")
	if err != nil {
		return err
	}
	dir, file, err := c.splitKeyFormat(keyFormat, prefix, slice, kp, what, forest)
	if err != nil {
		return err
	}
	dir = strings.TrimLeft(dir, "/")
	if dir == "" {
		dir = "${tag}/"
	}
	pn := ystr(dir)
	pn.comments = []string{sprintf("s3_object_key_format %s: the time slice becomes folders; %%{index} is not", keyFormat),
		"deterministic, so objects are named ${path}${node}-${chunk_id}.${ext} (a retry overwrites, never duplicates)."}
	if file == "" {
		pn.comments = pn.comments[:0]
	}
	n.set("path", pn)
	return c.buffer(e, n, what, true)
}

// timeSlice returns the strftime of fluentd's time slice: time_slice_format
// (v0.12), or the one fluentd derives from <buffer> timekey (v1).
func (c *converter) timeSlice(e *element, def string) (string, error) {
	if v, ok := e.str("time_slice_format"); ok {
		return v, nil
	}
	for _, b := range e.elems {
		if b.name != "buffer" {
			continue
		}
		for _, p := range b.params {
			if p.key == "timekey" {
				d, err := config.ParseDuration(p.val)
				if err != nil {
					return "", c.errorf(p.line, "timekey %q: %v", p.val, err)
				}
				switch {
				case d < 60e9:
					return "%Y%m%d%H%M%S", nil
				case d < 3600e9:
					return "%Y%m%d%H%M", nil
				case d < 86400e9:
					return "%Y%m%d%H", nil
				}
				return "%Y%m%d", nil
			}
		}
	}
	return def, nil
}

// splitKeyFormat turns an s3_object_key_format into maruta's path (the
// folders) and the file name part maruta replaces with its own.
func (c *converter) splitKeyFormat(kf, prefix, slice string, p *param, what string, forest bool) (dir, file string, err error) {
	s := strings.ReplaceAll(kf, "%{path}", prefix)
	s = strings.ReplaceAll(s, "%{time_slice}", strings.TrimSuffix(slice, "/")+"/")
	cut := strings.LastIndexByte(s, '/')
	dir, file = s[:cut+1], s[cut+1:]
	if m := keyFormatPH.FindString(dir); m != "" {
		line := 0
		if p != nil {
			line = p.line
		}
		return "", "", c.errorf(line, "%s: %s in the folders of s3_object_key_format is not supported (supported there: %%{path}, %%{time_slice}, strftime)", what, m)
	}
	if forest || strings.Contains(dir, "${tag") {
		dir = v1TagPart.ReplaceAllString(dir, "$${tag_parts[$1]}")
	}
	return dir, file, nil
}

func (c *converter) fileOut(e *element, n *ynode, what string, forest bool) error {
	n.set("type", ystr("file"))
	e.allow("path", "format", "append", "compress", "symlink_path", "time_slice_format", "include_time_key", "time_key",
		"time_format", "include_tag_key", "tag_key", "utc", "localtime", "timezone", "add_path_suffix", "path_suffix",
		"recompress", "buffer_path", "buffer_type")
	e.allowElems("buffer", "format", "inject")
	p, ok := e.get("path")
	if !ok {
		return c.errorf(e.line, "%s: path is required", what)
	}
	prefix, err := c.pathPlaceholders(p, what, forest)
	if err != nil {
		return err
	}
	n.set("format", ystr("jsonl"))
	format := "out_file"
	if v, ok := e.str("format"); ok {
		format = v
	}
	for _, f := range e.children("format") {
		ft, _ := f.typ()
		format = ft
		for _, fp := range f.params {
			fp.used = true
		}
	}
	switch format {
	case "out_file", "json", "hash", "msgpack", "ltsv", "stdout":
	default:
		return c.errorf(e.line, "%s: format %s is not supported (maruta writes JSON lines: format json or out_file)", what, format)
	}
	n.comment("format %s: maruta writes JSON lines with the event time in \"time\".", format)
	if p, ok := e.get("compress"); ok {
		switch p.val {
		case "gzip":
			n.set("compression", ystr("gzip"))
		case "text", "":
		default:
			return c.errorf(p.line, "%s: compress %s is not supported (gzip is)", what, p.val)
		}
	}
	if v, ok := e.str("time_format"); ok {
		n.set("time_format", ystr(v))
	}
	if v, ok := e.str("time_key"); ok {
		n.set("time_key", ystr(v))
	}
	for _, k := range []string{"include_time_key", "utc", "localtime", "timezone", "tag_key", "append", "symlink_path", "add_path_suffix", "path_suffix", "recompress"} {
		if pp, ok := e.get(k); ok && (k == "symlink_path" || k == "append" || k == "add_path_suffix" || k == "path_suffix" || k == "recompress") {
			n.comment("%s %s: maruta writes one file per chunk, named ${node}-${chunk_id}.", k, pp.val)
		}
	}
	if pp, ok := e.get("include_tag_key"); ok && pp.val != "false" {
		return c.errorf(pp.line, "%s: include_tag_key is not supported; add a record step (set: [{key: tag, value: ${tag}}]) before the output", what)
	}
	if len(e.children("inject")) > 0 {
		return c.errorf(e.line, "%s: <inject> is not supported; use a record step", what)
	}
	slice, err := c.timeSlice(e, "%Y%m%d")
	if err != nil {
		return err
	}
	var dir string
	if strings.Contains(prefix, "*") {
		dir = strings.Replace(prefix, "*", slice, 1)
	} else {
		dir = strings.TrimSuffix(prefix, "/") + "/" + slice
	}
	pn := ystr(dir + "/")
	pn.comments = []string{sprintf("path %s: fluentd's file prefix becomes a folder per time slice holding one file per chunk.", p.val)}
	n.set("path", pn)
	return c.buffer(e, n, what, false)
}

func (c *converter) forwardOut(e *element, n *ynode, what string) error {
	n.set("type", ystr("forward"))
	e.allow("require_ack_response", "ack_response_timeout", "compress", "heartbeat_type", "heartbeat_interval", "connect_timeout",
		"send_timeout", "keepalive", "keepalive_timeout", "recover_wait", "phi_threshold", "phi_failure_detector", "hard_timeout",
		"expire_dns_cache", "dns_round_robin", "transport", "tls_cert_path", "tls_client_cert_path", "tls_client_private_key_path",
		"tls_verify_hostname", "tls_insecure_mode", "tls_version", "tls_ciphers", "ignore_network_errors_at_startup",
		"verify_connection_at_startup", "buffer_path", "buffer_type")
	e.allowElems("server", "security", "buffer", "secondary")
	servers := ylist()
	for _, s := range e.children("server") {
		s.allow("host", "port", "name", "weight", "standby", "username", "password", "shared_key")
		sv := ymap()
		h, ok := s.str("host")
		if !ok {
			return c.errorf(s.line, "%s: <server> needs host", what)
		}
		if v, ok := s.str("name"); ok {
			sv.set("name", ystr(v))
		}
		sv.set("host", ystr(h))
		if v, ok := s.str("port"); ok {
			sv.set("port", ybare(v))
		}
		if v, ok := s.str("weight"); ok {
			sv.set("weight", ybare(v))
		}
		if p, ok := s.get("standby"); ok {
			b, err := c.boolean(p)
			if err != nil {
				return err
			}
			if b {
				sv.set("standby", ybool(true))
			}
		}
		for _, k := range []string{"username", "password", "shared_key"} {
			if p, ok := s.get(k); ok {
				return c.errorf(p.line, "%s <server>: per-server %s is not supported; set it in <security>", what, k)
			}
		}
		if err := s.check(c.p, what+" <server>"); err != nil {
			return err
		}
		servers.add(sv)
	}
	if len(servers.items) == 0 {
		return c.errorf(e.line, "%s: at least one <server> is required", what)
	}
	n.set("servers", servers)
	if p, ok := e.get("require_ack_response"); ok {
		b, err := c.boolean(p)
		if err != nil {
			return err
		}
		n.set("require_ack_response", ybool(b))
	} else {
		n.comment("require_ack_response: maruta waits for acks by default (fluentd did not); data is removed only after the ack.")
	}
	for _, k := range []string{"ack_response_timeout", "heartbeat_interval", "connect_timeout", "send_timeout"} {
		if v, ok := e.str(k); ok {
			n.set(k, ybare(durationText(v)))
		}
	}
	if v, ok := e.str("compress"); ok {
		n.set("compress", ystr(v))
	}
	if v, ok := e.str("heartbeat_type"); ok {
		n.set("heartbeat_type", ystr(v))
	}
	if p, ok := e.get("keepalive"); ok {
		b, err := c.boolean(p)
		if err != nil {
			return err
		}
		n.set("keepalive", ybool(b))
	}
	for _, k := range []string{"keepalive_timeout", "recover_wait", "phi_threshold", "phi_failure_detector", "hard_timeout", "expire_dns_cache",
		"dns_round_robin", "ignore_network_errors_at_startup", "verify_connection_at_startup", "tls_version", "tls_ciphers"} {
		if p, ok := e.get(k); ok {
			n.comment("%s %s: no maruta equivalent (failover follows heartbeats and send errors).", k, p.val)
		}
	}
	if p, ok := e.get("transport"); ok && p.val == "tls" {
		tls := n.sub("tls")
		if v, ok := e.str("tls_cert_path"); ok {
			tls.set("ca_file", ystr(v))
		}
		if v, ok := e.str("tls_client_cert_path"); ok {
			tls.set("cert_file", ystr(v))
		}
		if v, ok := e.str("tls_client_private_key_path"); ok {
			tls.set("key_file", ystr(v))
		}
		if p, ok := e.get("tls_insecure_mode"); ok && p.val == "true" {
			tls.set("insecure_skip_verify", ybool(true))
		}
		if p, ok := e.get("tls_verify_hostname"); ok && p.val == "false" {
			tls.set("insecure_skip_verify", ybool(true))
		}
	} else if ok && p.val != "tcp" {
		return c.errorf(p.line, "%s: transport %s is not supported (tcp, tls)", what, p.val)
	}
	for _, s := range e.children("security") {
		s.allow("self_hostname", "shared_key", "username", "password")
		s.allowHost("self_hostname")
		sec := n.sub("security")
		for _, k := range []string{"self_hostname", "shared_key", "username", "password"} {
			if v, ok := s.str(k); ok {
				if k == "self_hostname" && v == "${hostname}" {
					n.comment("self_hostname #{Socket.gethostname}: maruta sends its host name by default.")
					continue
				}
				sec.set(k, ystr(v))
			}
		}
		if err := s.check(c.p, what+" <security>"); err != nil {
			return err
		}
	}
	if len(e.children("secondary")) > 0 {
		return c.errorf(e.line, "%s: <secondary> is not supported (maruta keeps undeliverable chunks in its dead-letter folder)", what)
	}
	return c.buffer(e, n, what, false)
}

// buffer maps fluentd's buffer settings: v0.12 flat parameters or a v1
// <buffer> section.
func (c *converter) buffer(e *element, n *ynode, what string, timeSliced bool) error {
	buf := ymap()
	flat := map[string]string{
		"buffer_chunk_limit": "chunk_limit_size", "flush_interval": "flush_interval", "retry_wait": "retry_wait",
		"max_retry_wait": "retry_max_interval", "retry_limit": "retry_max_times", "num_threads": "flush_thread_count",
		"time_slice_wait": "timekey_wait",
	}
	e.allow("buffer_chunk_limit", "buffer_queue_limit", "flush_interval", "retry_wait", "max_retry_wait", "retry_limit", "disable_retry_limit",
		"num_threads", "time_slice_wait", "try_flush_interval", "flush_at_shutdown", "buffer_queue_full_action", "queued_chunk_flush_interval",
		"slow_flush_log_threshold", "buffer_path", "buffer_type", "max_send_retries", "time_slice_format")
	return c.bufferFrom(e, n, buf, flat, what, "")
}

func (c *converter) bufferFrom(e *element, n, buf *ynode, flat map[string]string, what, sec string) error {
	setDur := func(k, v string) { buf.set(k, ybare(durationText(v))) }
	for _, p := range e.params {
		if to, ok := flat[p.key]; ok {
			p.used = true
			switch to {
			case "chunk_limit_size":
				buf.set(to, ybare(sizeText(p.val)))
			case "retry_max_times", "flush_thread_count":
				buf.set(to, ybare(p.val))
			default:
				setDur(to, p.val)
			}
		}
	}
	if p, ok := e.get("buffer_queue_limit"); ok {
		chunk := int64(8 << 20) // fluentd v0.12's default buffer_chunk_limit
		if v, ok := e.str("buffer_chunk_limit"); ok {
			if s, err := config.ParseSize(v); err == nil {
				chunk = s
			}
		}
		q, err := strconv.ParseInt(p.val, 10, 64)
		if err != nil {
			return c.errorf(p.line, "%s: buffer_queue_limit %q is not a number", what, p.val)
		}
		buf.set("total_limit_size", ybare(config.FormatSize(chunk*q)))
	}
	if p, ok := e.get("disable_retry_limit"); ok && p.val != "false" {
		buf.set("retry_forever", ybool(true))
	}
	if p, ok := e.get("buffer_queue_full_action"); ok {
		switch p.val {
		case "exception":
			buf.set("overflow_action", ystr("throw"))
		case "block":
			buf.set("overflow_action", ystr("block"))
		case "drop_oldest_chunk":
			buf.set("overflow_action", ystr("drop_oldest_chunk"))
		default:
			return c.errorf(p.line, "%s: buffer_queue_full_action %q is not supported", what, p.val)
		}
	}
	notes := []string{}
	for _, k := range []string{"buffer_type", "buffer_path", "try_flush_interval", "flush_at_shutdown", "queued_chunk_flush_interval", "slow_flush_log_threshold", "max_send_retries"} {
		if p, ok := e.get(k); ok {
			notes = append(notes, k+" "+p.val)
		}
	}
	if len(notes) > 0 {
		n.comment("%s: maruta buffers every output on disk under data_dir/buffer/<output name> (chunks keyed by tag and time slice), syncs to disk before acknowledging, and sends what is left after a restart.", strings.Join(notes, ", "))
	}
	e.get("time_slice_format") // read by the output's path
	for _, b := range e.children("buffer") {
		if err := c.bufferSection(b, n, buf, what); err != nil {
			return err
		}
	}
	if len(buf.keys) > 0 {
		n.set("buffer", buf)
	}
	return nil
}

func (c *converter) bufferSection(b *element, n, buf *ynode, what string) error {
	what += " <buffer>"
	b.allow("@type", "type", "path", "chunk_limit_size", "total_limit_size", "flush_interval", "flush_mode", "flush_thread_count",
		"flush_at_shutdown", "flush_thread_interval", "flush_thread_burst_interval", "timekey", "timekey_wait", "timekey_use_utc",
		"timekey_zone", "retry_wait", "retry_max_interval", "retry_max_times", "retry_forever", "retry_timeout", "retry_type",
		"retry_exponential_backoff_base", "retry_randomize", "overflow_action", "queue_limit_length", "chunk_limit_records",
		"compress", "delayed_commit_timeout", "queued_chunks_limit_size", "chunk_full_threshold")
	for _, k := range []string{"chunk_limit_size", "total_limit_size"} {
		if v, ok := b.str(k); ok {
			buf.set(k, ybare(sizeText(v)))
		}
	}
	for _, k := range []string{"flush_interval", "timekey", "timekey_wait", "retry_wait", "retry_max_interval", "retry_timeout"} {
		if v, ok := b.str(k); ok {
			buf.set(k, ybare(durationText(v)))
		}
	}
	for _, k := range []string{"flush_thread_count", "retry_max_times"} {
		if v, ok := b.str(k); ok {
			buf.set(k, ybare(v))
		}
	}
	for _, k := range []string{"retry_forever", "retry_randomize"} {
		if p, ok := b.get(k); ok {
			v, err := c.boolean(p)
			if err != nil {
				return err
			}
			buf.set(k, ybool(v))
		}
	}
	if p, ok := b.get("overflow_action"); ok {
		switch p.val {
		case "throw_exception":
			buf.set("overflow_action", ystr("throw"))
		case "block", "drop_oldest_chunk":
			buf.set("overflow_action", ystr(p.val))
		default:
			return c.errorf(p.line, "%s: overflow_action %q is not supported", what, p.val)
		}
	}
	if p, ok := b.get("queue_limit_length"); ok {
		chunk := int64(8 << 20)
		if v, ok := b.str("chunk_limit_size"); ok {
			if s, err := config.ParseSize(v); err == nil {
				chunk = s
			}
		}
		q, err := strconv.ParseInt(p.val, 10, 64)
		if err != nil {
			return c.errorf(p.line, "%s: queue_limit_length %q is not a number", what, p.val)
		}
		if buf.get("total_limit_size") == nil {
			buf.set("total_limit_size", ybare(config.FormatSize(chunk*q)))
		}
	}
	if p, ok := b.get("timekey_zone"); ok && p.val != "UTC" && p.val != "+0000" && p.val != "+00:00" {
		return c.errorf(p.line, "%s: timekey_zone %s is not supported (maruta's time slices are UTC)", what, p.val)
	}
	if p, ok := b.get("flush_mode"); ok {
		switch p.val {
		case "interval", "default":
		case "lazy":
			n.comment("flush_mode lazy: chunks are sent when their time slice ends (timekey + timekey_wait) or at flush_interval.")
		case "immediate":
			buf.set("flush_interval", ybare("1s"))
			n.comment("flush_mode immediate: approximated by flush_interval 1s.")
		default:
			return c.errorf(p.line, "%s: flush_mode %q is not supported", what, p.val)
		}
	}
	if p, ok := b.get("chunk_limit_records"); ok {
		return c.errorf(p.line, "%s: chunk_limit_records is not supported (chunk_limit_size is)", what)
	}
	if p, ok := b.get("compress"); ok && p.val != "text" {
		n.comment("<buffer> compress %s: maruta's chunk files are not compressed; the objects it writes are.", p.val)
	}
	var notes []string
	for _, k := range []string{"@type", "type", "path", "flush_at_shutdown", "flush_thread_interval", "flush_thread_burst_interval", "timekey_use_utc",
		"retry_type", "retry_exponential_backoff_base", "delayed_commit_timeout", "queued_chunks_limit_size", "chunk_full_threshold"} {
		if p, ok := b.get(k); ok {
			notes = append(notes, k+" "+p.val)
		}
	}
	if len(notes) > 0 {
		n.comment("<buffer> %s: maruta buffers on disk under data_dir/buffer/<output name>, retries with exponential backoff, time slices in UTC.", strings.Join(notes, ", "))
	}
	// chunk keys: tag and time are implicit in maruta; others are chunk_keys.
	var keys []string
	for _, k := range strings.Split(b.arg, ",") {
		k = strings.TrimSpace(k)
		if k == "" || k == "tag" || k == "time" {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) > 0 {
		kl := ylist()
		for _, k := range keys {
			kl.add(ystr(k))
		}
		buf.set("chunk_keys", kl)
	}
	return b.check(c.p, what)
}
