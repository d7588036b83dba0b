package fluentconf

import (
	"strconv"
	"strings"

	"github.com/marutalog/maruta/internal/config"
)

// The event outputs: td-agent's tdlog (fluent-plugin-td),
// fluent-plugin-cloudwatch-logs, fluent-plugin-papertrail and
// fluent-plugin-remote_syslog.

// nameParams are parameters that name a destination per tag: forest's
// placeholders are allowed there (checkForestParams) and converted to
// maruta's templates.
var nameParams = []string{"database", "table", "log_group_name", "log_stream_name", "program"}

// template converts a parameter that names a destination: forest's and
// fluentd v1's tag placeholders become ${tag} and ${tag_parts[N]}; other
// ${key} stay (a record key, as fluentd v1's chunk-key placeholders).
func (c *converter) template(p *param, what string, forest bool) (string, error) {
	return c.pathPlaceholders(p, what, forest)
}

// endpointURL turns a plugin's host[:port] endpoint into a URL.
func endpointURL(host string, ssl bool) string {
	if strings.Contains(host, "://") {
		return host
	}
	if ssl {
		return "https://" + host
	}
	return "http://" + host
}

// tdRegionOf returns the TD region whose import or API host v is.
func tdRegionOf(v string) string {
	host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(v, "https://"), "http://"), "/")
	for region, hosts := range config.TreasureDataRegions {
		if host == hosts[0] || host == hosts[1] {
			return region
		}
	}
	return ""
}

func (c *converter) tdlogOut(e *element, n *ynode, what string, forest bool) error {
	n.set("type", ystr("treasure_data"))
	e.allow("apikey", "database", "table", "auto_create_table", "endpoint", "import_endpoint", "api_endpoint", "use_ssl",
		"http_proxy", "connect_timeout", "read_timeout", "send_timeout", "tmpdir", "use_gzip_command", "buffer_path", "buffer_type")
	e.allowElems("buffer", "anonymize", "secondary")
	key, ok := e.str("apikey")
	if !ok {
		return c.errorf(e.line, "%s: apikey is required", what)
	}
	n.set("apikey", ystr(key))
	ssl := true
	if p, ok := e.get("use_ssl"); ok {
		b, err := c.boolean(p)
		if err != nil {
			return err
		}
		ssl = b
	}
	for _, k := range [][2]string{{"endpoint", "endpoint"}, {"import_endpoint", "endpoint"}, {"api_endpoint", "api_endpoint"}} {
		v, ok := e.str(k[0])
		if !ok {
			continue
		}
		if region := tdRegionOf(v); region != "" && ssl {
			// A site's own host: the region names both endpoints.
			n.set("region", ystr(region))
			continue
		}
		n.set(k[1], ystr(endpointURL(v, ssl)))
	}
	db, hasDB := e.get("database")
	table, hasTable := e.get("table")
	if hasDB != hasTable {
		return c.errorf(e.line, "%s: set both database and table, or neither (then the tag's last two parts name them)", what)
	}
	if hasDB {
		for _, pr := range []*param{db, table} {
			v, err := c.template(pr, what, forest)
			if err != nil {
				return err
			}
			n.set(pr.key, ystr(v))
		}
	} else {
		n.comment("no database and table: the tag's last two parts name them (database ${tag_parts[-2]}, table ${tag_parts[-1]}), as out_tdlog does.")
	}
	if p, ok := e.get("auto_create_table"); ok {
		b, err := c.boolean(p)
		if err != nil {
			return err
		}
		n.set("auto_create_table", ybool(b))
	}
	var timeouts []string
	for _, k := range []string{"connect_timeout", "read_timeout", "send_timeout"} {
		if v, ok := e.str(k); ok {
			timeouts = append(timeouts, k+" "+v)
		}
	}
	if len(timeouts) > 0 {
		n.comment("%s: maruta bounds each request by timeout (default 5m).", strings.Join(timeouts, ", "))
	}
	for _, k := range []string{"tmpdir", "use_gzip_command"} {
		if p, ok := e.get(k); ok {
			n.comment("%s %s: maruta gzips in memory, one import at a time.", k, p.val)
		}
	}
	if p, ok := e.get("http_proxy"); ok {
		n.comment("http_proxy %s: set HTTPS_PROXY in maruta's environment instead.", p.val)
	}
	if len(e.children("anonymize")) > 0 {
		return c.errorf(e.line, "%s: <anonymize> is not supported (deprecated in fluent-plugin-td too); use a record step", what)
	}
	if len(e.children("secondary")) > 0 {
		return c.errorf(e.line, "%s: <secondary> is not supported (maruta keeps undeliverable chunks in its dead-letter folder)", what)
	}
	return c.buffer(e, n, what, false)
}

func (c *converter) cloudwatchOut(e *element, n *ynode, what string, forest bool) error {
	n.set("type", ystr("cloudwatch_logs"))
	e.allow("region", "endpoint", "aws_key_id", "aws_sec_key", "log_group_name", "log_stream_name", "use_tag_as_group", "use_tag_as_stream",
		"log_group_name_key", "log_stream_name_key", "remove_log_group_name_key", "remove_log_stream_name_key", "auto_create_stream",
		"retention_in_days", "retention_in_days_key", "remove_retention_in_days_key", "message_keys", "max_message_length",
		"max_events_per_batch", "put_log_events_retry_wait", "put_log_events_retry_limit", "put_log_events_disable_retry_limit",
		"concurrency", "json_handler", "log_rejected_request", "http_proxy", "ssl_verify_peer", "log_group_aws_tags",
		"log_group_aws_tags_key", "remove_log_group_aws_tags_key", "aws_use_sts", "aws_sts_role_arn", "aws_sts_session_name",
		"aws_sts_external_id", "aws_sts_policy", "aws_sts_duration_seconds", "aws_sts_endpoint_url", "aws_ecs_authentication",
		"aws_instance_profile_credentials_retries", "include_time_key", "localtime", "buffer_path", "buffer_type")
	e.allowElems("buffer", "web_identity_credentials", "format", "inject")
	for _, k := range [][2]string{{"region", "region"}, {"endpoint", "endpoint"}, {"aws_key_id", "access_key_id"}, {"aws_sec_key", "secret_access_key"}} {
		if v, ok := e.str(k[0]); ok {
			n.set(k[1], ystr(v))
		}
	}
	for _, side := range []string{"group", "stream"} {
		key := "log_" + side + "_name"
		var set []string
		var val string
		if p, ok := e.get(key); ok {
			v, err := c.template(p, what, forest)
			if err != nil {
				return err
			}
			set, val = append(set, key), v
		}
		if p, ok := e.get("use_tag_as_" + side); ok {
			b, err := c.boolean(p)
			if err != nil {
				return err
			}
			if b {
				set, val = append(set, "use_tag_as_"+side), "${tag}"
			}
		}
		if v, ok := e.str(key + "_key"); ok {
			set, val = append(set, key+"_key"), "${"+v+"}"
		}
		if len(set) != 1 {
			return c.errorf(e.line, "%s: set exactly one of %s, use_tag_as_%s and %s_key", what, key, side, key)
		}
		n.set(key, ystr(val))
		if p, ok := e.get("remove_" + key + "_key"); ok && p.val != "false" {
			return c.errorf(p.line, "%s: remove_%s_key is not supported; the message is the record as received (use message_keys, or a record step)", what, key)
		}
	}
	if p, ok := e.get("auto_create_stream"); ok {
		b, err := c.boolean(p)
		if err != nil {
			return err
		}
		n.set("auto_create_stream", ybool(b))
	}
	if v, ok := e.str("retention_in_days"); ok {
		n.set("retention_in_days", ybare(v))
	}
	for _, k := range []string{"retention_in_days_key", "log_group_aws_tags", "log_group_aws_tags_key", "aws_use_sts", "aws_sts_role_arn"} {
		if p, ok := e.get(k); ok && p.val != "false" {
			return c.errorf(p.line, "%s: %s is not supported", what, k)
		}
	}
	if v, ok := e.str("message_keys"); ok {
		l := ylist()
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				l.add(ystr(k))
			}
		}
		n.set("message_keys", l)
	}
	if v, ok := e.str("max_message_length"); ok {
		if _, err := strconv.Atoi(v); err != nil {
			return c.errorf(e.line, "%s: max_message_length %q is not a number", what, v)
		}
		n.set("max_message_length", ybare(v))
		n.set("oversize", ystr("truncate"))
	}
	for _, k := range []string{"max_events_per_batch", "put_log_events_retry_wait", "put_log_events_retry_limit", "put_log_events_disable_retry_limit",
		"concurrency", "json_handler", "log_rejected_request", "http_proxy", "aws_sts_session_name", "aws_sts_external_id", "aws_sts_policy",
		"aws_sts_duration_seconds", "aws_sts_endpoint_url", "aws_ecs_authentication", "aws_instance_profile_credentials_retries",
		"remove_retention_in_days_key", "remove_log_group_aws_tags_key"} {
		if p, ok := e.get(k); ok {
			n.comment("%s %s: maruta batches to the service's limits, retries throttling in the SDK (3 tries) and then with the buffer's backoff, logs and counts rejected events, uses the SDK's credential chain and HTTPS_PROXY.", k, p.val)
		}
	}
	if p, ok := e.get("ssl_verify_peer"); ok && p.val == "false" {
		return c.errorf(p.line, "%s: ssl_verify_peer false is not supported", what)
	}
	for _, x := range e.children("web_identity_credentials") {
		x.used = true
		for _, p := range x.params {
			p.used = true
		}
		n.comment("<web_identity_credentials>: maruta uses the AWS SDK's default credential chain (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE for web identity).")
	}
	for _, k := range []string{"include_time_key", "localtime"} {
		if p, ok := e.get(k); ok && p.val != "false" {
			return c.errorf(p.line, "%s: %s is not supported; CloudWatch Logs keeps each event's time, and a record step can add one to the message", what, k)
		}
	}
	if len(e.children("format")) > 0 || len(e.children("inject")) > 0 {
		return c.errorf(e.line, "%s: <format> and <inject> are not supported: the message is message_keys' values or the record as JSON", what)
	}
	return c.buffer(e, n, what, false)
}

func (c *converter) papertrailOut(e *element, n *ynode, what string) error {
	n.set("type", ystr("syslog"))
	e.allow("papertrail_host", "papertrail_port", "default_hostname", "discard_unannotated_pod_logs", "maximum_syslog_packet_size",
		"buffer_path", "buffer_type")
	e.allowElems("buffer")
	host, ok := e.str("papertrail_host")
	if !ok {
		return c.errorf(e.line, "%s: papertrail_host is required", what)
	}
	port, ok := e.str("papertrail_port")
	if !ok {
		return c.errorf(e.line, "%s: papertrail_port is required", what)
	}
	n.set("host", ystr(host))
	n.set("port", ybare(port))
	n.set("tls", ymap())
	n.set("framing", ystr("newline"))
	def := "unidentified"
	if v, ok := e.str("default_hostname"); ok {
		def = v
	}
	n.set("hostname", ystr("${hostname:-"+def+"}"))
	n.set("severity_key", ystr("severity"))
	n.set("facility", ystr("local0"))
	n.set("facility_key", ystr("facility"))
	size := "99990"
	if v, ok := e.str("maximum_syslog_packet_size"); ok {
		size = v
	}
	n.set("max_message_size", ybare(size))
	n.set("oversize", ystr("truncate"))
	n.comment("fluent-plugin-papertrail: RFC 5424 over TLS, one message per line; the app name is the tag (the plugin took a record's")
	n.comment("`program` first) and the message the record's `log` (the plugin took `message` first: set message_key: message).")
	if p, ok := e.get("discard_unannotated_pod_logs"); ok && p.val != "false" {
		return c.errorf(p.line, "%s: discard_unannotated_pod_logs is not supported; use a grep step", what)
	}
	return c.buffer(e, n, what, false)
}

func (c *converter) remoteSyslogOut(e *element, n *ynode, what string, forest bool) error {
	n.set("type", ystr("syslog"))
	e.allow("host", "port", "host_with_port", "protocol", "tls", "ca_file", "verify_mode", "program", "hostname", "severity", "facility",
		"keep_alive", "keep_alive_idle", "keep_alive_cnt", "keep_alive_intvl", "output_type", "output_include_time", "output_include_tag",
		"output_data_type", "field_separator", "add_newline", "remove_prefix", "default_tag", "buffer_path", "buffer_type")
	e.allowElems("buffer", "format")
	host, hasHost := e.str("host")
	port := "25" // the plugin's default
	if v, ok := e.str("port"); ok {
		port = v
	} else if hasHost {
		n.comment("no port: fluent-plugin-remote_syslog's default is 25.")
	}
	if v, ok := e.str("host_with_port"); ok {
		h, p, found := strings.Cut(v, ":")
		if !found {
			return c.errorf(e.line, "%s: host_with_port %q is not host:port", what, v)
		}
		host, port, hasHost = h, p, true
	}
	if !hasHost {
		return c.errorf(e.line, "%s: host or host_with_port is required", what)
	}
	n.set("host", ystr(host))
	n.set("port", ybare(port))
	proto := "udp" // the plugin's default
	if v, ok := e.str("protocol"); ok {
		proto = v
	}
	n.set("protocol", ystr(proto))
	if p, ok := e.get("tls"); ok {
		b, err := c.boolean(p)
		if err != nil {
			return err
		}
		if b {
			tls := n.sub("tls")
			if v, ok := e.str("ca_file"); ok {
				tls.set("ca_file", ystr(v))
			}
			if v, ok := e.str("verify_mode"); ok && v == "0" {
				tls.set("insecure_skip_verify", ybool(true))
			}
		}
	}
	e.get("ca_file")
	e.get("verify_mode")
	if proto == "tcp" {
		n.set("framing", ystr("newline"))
	}
	app := "fluentd"
	if p, ok := e.get("program"); ok {
		v, err := c.template(p, what, forest)
		if err != nil {
			return err
		}
		app = v
	}
	n.set("app_name", ystr(app))
	if v, ok := e.str("hostname"); ok && v != "" {
		n.set("hostname", ystr(v))
	}
	sev := "notice"
	if v, ok := e.str("severity"); ok {
		sev = v
	}
	n.set("severity", ystr(sev))
	if v, ok := e.str("facility"); ok {
		n.set("facility", ystr(v))
	}
	n.set("message_key", ystr(""))
	var notes []string
	for _, k := range []string{"output_type", "output_include_time", "output_include_tag", "output_data_type", "field_separator", "add_newline", "remove_prefix", "default_tag"} {
		if p, ok := e.get(k); ok {
			notes = append(notes, k+" "+p.val)
		}
	}
	for _, f := range e.children("format") {
		for _, p := range f.params {
			p.used = true
		}
		notes = append(notes, "<format>")
	}
	n.comment("fluent-plugin-remote_syslog sent RFC 3164 lines of its text formatter%s; maruta sends RFC 5424 messages whose text is the record as JSON,", strings.TrimSuffix(" ("+strings.Join(notes, ", ")+")", " ()"))
	n.comment("one message per line (a newline inside a message is sent as #012, where the plugin sent one message per line of it).")
	for _, k := range []string{"keep_alive", "keep_alive_idle", "keep_alive_cnt", "keep_alive_intvl"} {
		if p, ok := e.get(k); ok {
			n.comment("%s %s: maruta keeps connections open between chunks and checks an idle one before it writes.", k, p.val)
		}
	}
	return c.buffer(e, n, what, false)
}
