package fluentconf

import (
	"errors"
	"strings"
	"testing"

	"github.com/marutalog/maruta/internal/config"
)

const src = "<source>\n  @type forward\n</source>\n"

// TestConvertErrors: every unsupported plugin, parameter or section is an
// error naming file:line and what is supported.
func TestConvertErrors(t *testing.T) {
	for _, c := range []struct{ name, conf, want string }{
		{"unknown source", "<source>\n  @type tail\n  path /var/log/*.log\n</source>\n",
			"f.conf:2: <source> @type tail is not supported (supported sources: forward; monitor_agent and prometheus become maruta's HTTP endpoint)"},
		{"no source", "<match **>\n  @type null\n</match>\n",
			"f.conf:1: no <source> @type forward: maruta receives events with the Forward protocol only"},
		{"no output", src,
			"f.conf:1: no <match> with an output: events would go nowhere"},
		{"unknown output", src + "<match **>\n  @type elasticsearch\n  host es\n</match>\n",
			"f.conf:4: <match **> @type elasticsearch is not supported (supported outputs: rewrite_tag_filter, copy, forest, s3, file, stdout, null, forward, tdlog, cloudwatch_logs, papertrail, remote_syslog)"},
		{"unknown filter", src + "<filter **>\n  @type kubernetes_metadata\n</filter>\n<match **>\n  @type null\n</match>\n",
			"f.conf:5: <filter **> @type kubernetes_metadata is not supported (supported filters: parser, record_transformer, grep, concat)"},
		{"unknown s3 param", src + "<match **>\n  @type s3\n  s3_bucket b\n  s3_bucket_typo x\n</match>\n",
			"f.conf:7: <match **> @type s3: unsupported parameter \"s3_bucket_typo\" (supported: @id, @log_level, @type, acl, auto_create_bucket, aws_key_id, aws_sec_key, buffer_chunk_limit, buffer_path, buffer_queue_full_action, buffer_queue_limit, buffer_type, check_apikey_on_start, check_bucket, check_object, compute_checksums, disable_retry_limit, flush_at_shutdown, flush_interval, force_path_style, format, hex_random_length, include_tag_key, include_time_key, index_format, localtime, log_level, max_retry_wait, max_send_retries, num_threads, path, proxy_uri, queued_chunk_flush_interval, reduced_redundancy, retry_limit, retry_wait, s3_bucket, s3_endpoint, s3_object_key_format, s3_region, signature_version, slow_flush_log_threshold, ssekms_key_id, ssl_verify_peer, storage_class, store_as, tag_key, time_format, time_key, time_slice_format, time_slice_wait, timezone, try_flush_interval, type, use_server_side_encryption, utc, warn_for_delay)"},
		{"tdlog without apikey", src + "<match **>\n  @type tdlog\n  database db\n  table tb\n</match>\n",
			"f.conf:4: <match **> @type tdlog: apikey is required"},
		{"cloudwatch two stream names", src + "<match **>\n  @type cloudwatch_logs\n  log_group_name g\n  log_stream_name s\n  use_tag_as_stream true\n</match>\n",
			"f.conf:4: <match **> @type cloudwatch_logs: set exactly one of log_stream_name, use_tag_as_stream and log_stream_name_key"},
		{"cloudwatch remove key", src + "<match **>\n  @type cloudwatch_logs\n  log_group_name g\n  log_stream_name_key k\n  remove_log_stream_name_key true\n</match>\n",
			"f.conf:8: <match **> @type cloudwatch_logs: remove_log_stream_name_key is not supported; the message is the record as received (use message_keys, or a record step)"},
		{"papertrail without port", src + "<match **>\n  @type papertrail\n  papertrail_host logs.papertrailapp.com\n</match>\n",
			"f.conf:4: <match **> @type papertrail: papertrail_port is required"},
		{"unknown section", src + "<match **>\n  @type stdout\n  <buffer>\n  </buffer>\n</match>\n",
			"f.conf:6: <match **> @type stdout: unsupported section <buffer> (supported: format, inject)"},
		{"include", src + "@include other.conf\n",
			"f.conf:4: @include is not supported: put the included files' directives in this file (maruta convert reads one file)"},
		{"unclosed", src + "<match **>\n  @type null\n",
			"f.conf:4: <match> is not closed"},
		{"mismatched close", src + "<match **>\n  @type null\n</filter>\n",
			"f.conf:6: </filter> closes <match> opened at line 4"},
		{"other label", src + "<label @APP>\n  <match **>\n    @type null\n  </match>\n</label>\n",
			"f.conf:4: <label @APP> is not supported: maruta has one pipeline; only <label @ERROR> (the error route) is"},
		{"source label", "<source>\n  @type forward\n  @label @APP\n</source>\n<match **>\n  @type null\n</match>\n",
			"f.conf:3: <source> @type forward: @label routing is not supported (maruta has one pipeline; <label @ERROR> is supported)"},
		{"ruby", "<source>\n  @type forward\n  port \"#{1 + 2}\"\n</source>\n",
			"f.conf:3: \"#{1 + 2}\": maruta evaluates no Ruby; supported: #{ENV['NAME']}, #{ENV.fetch('NAME', 'default')}, #{Socket.gethostname} (as ${hostname} where maruta expands it)"},
		{"lower-case env", "<source>\n  @type forward\n  port \"#{ENV['port']}\"\n</source>\n",
			"f.conf:3: \"#{ENV['port']}\": maruta reads upper-case environment variables only ([A-Z_][A-Z0-9_]*); rename port"},
		{"parser format", src + "<filter **>\n  @type parser\n  key_name log\n  format apache2\n</filter>\n<match **>\n  @type null\n</match>\n",
			"f.conf:7: <filter **> @type parser: parser format \"apache2\" is not supported (supported: json, regexp, /regexp/)"},
		{"parser key_name", src + "<filter **>\n  @type parser\n  <parse>\n    @type json\n  </parse>\n</filter>\n<match **>\n  @type null\n</match>\n",
			"f.conf:4: <filter **> @type parser: key_name is required"},
		{"parser types", src + "<filter **>\n  @type parser\n  key_name log\n  format json\n  types t:time\n</filter>\n<match **>\n  @type null\n</match>\n",
			"f.conf:8: <filter **> @type parser: types t:time is not supported (supported: string, integer, float, bool, array)"},
		{"record ruby", src + "<filter **>\n  @type record_transformer\n  enable_ruby true\n  <record>\n    a ${record['b']}\n  </record>\n</filter>\n<match **>\n  @type null\n</match>\n",
			"f.conf:6: <filter **> @type record_transformer: enable_ruby true is not supported (maruta evaluates no Ruby and edits records in place)"},
		{"record field", src + "<filter **>\n  @type record_transformer\n  <record>\n    copy ${message}\n  </record>\n</filter>\n<match **>\n  @type null\n</match>\n",
			"f.conf:7: <filter **> @type record_transformer: placeholder ${message} is not supported (supported: ${tag}, ${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]}, ${hostname})"},
		{"grep and", src + "<filter **>\n  @type grep\n  <and>\n    <regexp>\n      key a\n      pattern b\n    </regexp>\n  </and>\n</filter>\n<match **>\n  @type null\n</match>\n",
			"f.conf:6: <filter **> @type grep: <and> is not supported (top-level <regexp> rules all must match; any <exclude> drops)"},
		{"concat multiline", src + "<filter **>\n  @type concat\n  key log\n  multiline_start_regexp /^\\d/\n</filter>\n<match **>\n  @type null\n</match>\n",
			"f.conf:7: <filter **> @type concat: multiline_start_regexp (multi-line joining) is not supported; maruta's concat_partials joins Docker's split lines (use_partial_metadata, or partial_key partial_message)"},
		{"concat separator", src + "<filter **>\n  @type concat\n  key log\n  use_partial_metadata true\n</filter>\n<match **>\n  @type null\n</match>\n",
			"f.conf:4: <filter **> @type concat: separator must be \"\" (Docker splits a line without adding anything)"},
		{"rewrite no rule", src + "<match a>\n  @type rewrite_tag_filter\n</match>\n<match **>\n  @type null\n</match>\n",
			"f.conf:4: <match a> @type rewrite_tag_filter: no <rule>"},
		{"rewrite bad rule line", src + "<match a>\n  @type rewrite_tag_filter\n  rewriterule1 onlykey\n</match>\n<match **>\n  @type null\n</match>\n",
			"f.conf:6: <match a> @type rewrite_tag_filter: rewriterule1 wants \"key pattern tag\""},
		{"copy ignore_error", src + "<match **>\n  @type copy\n  <store ignore_error>\n    @type null\n  </store>\n</match>\n",
			"f.conf:6: <match **> @type copy: <store ignore_error> is not supported: maruta's copy is all-or-nothing (a failing store fails the batch, which the client retries)"},
		{"forest case", src + "<match **>\n  @type forest\n  subtype file\n  <template>\n    path /tmp/${tag}\n  </template>\n  <case a.**>\n    path /tmp/a\n  </case>\n</match>\n",
			"f.conf:10: <match **> @type forest: <case> is not supported; write one <match> per case before this one"},
		{"forest placeholder elsewhere", src + "<match **>\n  @type forest\n  subtype s3\n  <template>\n    s3_bucket logs-${tag_parts[0]}\n    path x/\n  </template>\n</match>\n",
			"f.conf:8: <match **> @type forest <template>: ${tag_parts[0]} in s3_bucket is not supported; maruta resolves per-tag placeholders only in output paths"},
		{"forest range", src + "<match **>\n  @type forest\n  subtype file\n  <template>\n    path /tmp/${tag_parts[0..1]}\n  </template>\n</match>\n",
			"f.conf:8: <template> (forest subtype file): ${tag_parts[0..1]} (a range of tag parts) in path is not supported; maruta output paths take ${tag} and ${tag_parts[N]}"},
		{"s3 key index folder", src + "<match **>\n  @type s3\n  s3_bucket b\n  s3_object_key_format %{path}%{index}/%{time_slice}.gz\n</match>\n",
			"f.conf:7: <match **> @type s3: %{index} in the folders of s3_object_key_format is not supported (supported there: %{path}, %{time_slice}, strftime)"},
		{"s3 include_tag_key", src + "<match **>\n  @type s3\n  s3_bucket b\n  include_tag_key true\n</match>\n",
			"f.conf:7: <match **> @type s3: include_tag_key is not supported; add a record step (set: [{key: tag, value: ${tag}}]) before the output"},
		{"timekey zone", src + "<match **>\n  @type s3\n  s3_bucket b\n  <buffer time>\n    timekey 1h\n    timekey_zone +0900\n  </buffer>\n</match>\n",
			"f.conf:9: <match **> @type s3 <buffer>: timekey_zone +0900 is not supported (maruta's time slices are UTC)"},
		{"error label filter", src + "<label @ERROR>\n  <filter **>\n    @type grep\n  </filter>\n</label>\n",
			"f.conf:5: <label @ERROR>: <filter> is not supported (error-route events skip the pipeline); only <match> is"},
		{"bad bool", src + "<filter **>\n  @type parser\n  key_name log\n  format json\n  reserve_data maybe\n</filter>\n<match **>\n  @type null\n</match>\n",
			"f.conf:8: reserve_data \"maybe\" is not true or false"},
		{"env bool", src + "<filter **>\n  @type parser\n  key_name log\n  format json\n  reserve_data \"#{ENV['RESERVE']}\"\n</filter>\n<match **>\n  @type null\n</match>\n",
			"f.conf:8: reserve_data: an environment variable cannot set a true/false parameter here; write true or false"},
		{"forward secondary", src + "<match **>\n  @type forward\n  <server>\n    host a\n  </server>\n  <secondary>\n    @type file\n    path /x\n  </secondary>\n</match>\n",
			"f.conf:4: <match **> @type forward: <secondary> is not supported (maruta keeps undeliverable chunks in its dead-letter folder)"},
		{"worker", src + "<worker 0>\n</worker>\n",
			"f.conf:4: <worker> is not supported (supported: <source>, <filter>, <match>, <system>, <label @ERROR>)"},
		{"hostname elsewhere", "<source>\n  @type forward\n  bind \"#{Socket.gethostname}\"\n</source>\n<match **>\n  @type null\n</match>\n",
			"f.conf:3: <source> @type forward: #{Socket.gethostname} in bind is not supported (maruta expands the host name in record values, rewrite tags and self_hostname)"},
		{"param outside", "port 24224\n",
			"f.conf:1: parameter \"port\" outside any directive"},
		{"unterminated string", "<source>\n  @type forward\n  bind \"0.0.0.0\n</source>\n",
			"f.conf:3: unterminated double-quoted string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Convert("f.conf", []byte(c.conf))
			if err == nil {
				t.Fatalf("converted without error")
			}
			if err.Error() != c.want {
				t.Fatalf("error:\n got: %s\nwant: %s", err, c.want)
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.File != "f.conf" || ce.Line == 0 {
				t.Fatalf("not a *config.Error with file and line: %#v", err)
			}
		})
	}
}

// TestParseSyntax checks the fluent.conf reader on the syntax corners.
func TestParseSyntax(t *testing.T) {
	conf := `# comment
<source>
  @type forward # trailing comment
  tag a#b
  quoted "has # hash \"and\" quotes\tand #{ENV['HOME_DIR']}/x"
  single 'it\'s \\ literal ${NOT_ENV}'
  literal ${NOT_ENV} and ${tag}
  multi "line one
line two"
  array ["a", "b",
         "c"]
  flag
  <inner arg with spaces>
    k v
  </inner>
</source>
`
	root, err := parse("f.conf", []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	if len(root.elems) != 1 {
		t.Fatalf("elements: %d", len(root.elems))
	}
	e := root.elems[0]
	want := map[string]string{
		"@type":   "forward",
		"tag":     "a#b",
		"quoted":  "has # hash \"and\" quotes\tand ${HOME_DIR}/x",
		"single":  "it's \\ literal $${NOT_ENV}",
		"literal": "$${NOT_ENV} and ${tag}",
		"multi":   "line one\nline two",
		"array":   "[\"a\", \"b\",\n         \"c\"]",
		"flag":    "",
	}
	for k, v := range want {
		got, ok := e.str(k)
		if !ok || got != v {
			t.Errorf("%s = %q (%v), want %q", k, got, ok, v)
		}
	}
	if p, _ := e.get("quoted"); !p.env {
		t.Error("quoted: env reference not noted")
	}
	if len(e.elems) != 1 || e.elems[0].name != "inner" || e.elems[0].arg != "arg with spaces" || e.elems[0].line != 13 {
		t.Errorf("inner element: %+v", e.elems[0])
	}
	if p, _ := e.get("multi"); p.line != 8 {
		t.Errorf("multi line %d", p.line)
	}
	if !strings.Contains(string(mustConvertYAML(t)), "listen") {
		t.Error("sanity")
	}
}

func mustConvertYAML(t *testing.T) []byte {
	y, err := Convert("f.conf", []byte(src+"<match **>\n  @type stdout\n</match>\n"))
	if err != nil {
		t.Fatal(err)
	}
	return y
}
