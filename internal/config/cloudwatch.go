package config

import (
	"regexp"
	"slices"
	"strings"
	"time"
)

// CloudWatchLogsOutput sends events to Amazon CloudWatch Logs with
// PutLogEvents (the keys of fluent-plugin-cloudwatch-logs where it has
// them). Every fact about this output type is in this file: keys,
// defaults, validation.
//
// Each buffer chunk's events are grouped by log group and stream (the
// templates are rendered per event), sorted by time within a stream and
// sent in batches within the service's limits (sinks/cloudwatch.go cites
// them). A batch the service accepted is not sent again when the buffer
// retries the chunk.
type CloudWatchLogsOutput struct {
	OutputCommon `yaml:",inline"`
	// Region, or the SDK's (AWS_REGION, the profile, IMDS on EC2).
	Region string `yaml:"region,omitempty"`
	// Endpoint overrides the service URL (tests, VPC endpoints);
	// AWS_ENDPOINT_URL_CLOUDWATCH_LOGS and AWS_ENDPOINT_URL work too.
	Endpoint string `yaml:"endpoint,omitempty"`
	// AccessKeyID and SecretAccessKey set static credentials. Default: the
	// SDK's credential chain (environment, web identity, ECS, EKS pod
	// identity, IMDSv2).
	AccessKeyID     string `yaml:"access_key_id,omitempty"`
	SecretAccessKey string `yaml:"secret_access_key,omitempty"`
	// LogGroupName and LogStreamName are templates rendered per event:
	// ${tag}, ${tag_parts[N]}, ${key} (a record key; ${key:-default} when
	// the key may be missing) and strftime on the event time (UTC).
	// Characters the service does not allow in a name become '_'.
	LogGroupName  string `yaml:"log_group_name"`
	LogStreamName string `yaml:"log_stream_name"`
	// AutoCreateStream creates a missing log group and stream (fluentd's
	// name; default false: a missing one sends the chunk to the dead
	// letter).
	AutoCreateStream bool `yaml:"auto_create_stream,omitempty"`
	// RetentionInDays and KMSKeyID apply to log groups maruta creates.
	RetentionInDays int    `yaml:"retention_in_days,omitempty"`
	KMSKeyID        string `yaml:"kms_key_id,omitempty"`
	// MessageKeys: the message is the values of these record keys joined
	// by a space (fluentd's message_keys); empty (default): the whole
	// record as JSON.
	MessageKeys []string `yaml:"message_keys,omitempty"`
	// MaxMessageLength bounds a message in bytes. Default and maximum
	// 1048550: the service's 1 MiB event limit less its 26-byte overhead.
	MaxMessageLength int `yaml:"max_message_length,omitempty"`
	// Oversize is what happens to a longer message: split (default: into
	// several events of the same time, in order) or truncate.
	Oversize Oversize `yaml:"oversize,omitempty"`
	// Timeout bounds one API call, retries included. Default 1m.
	Timeout Duration `yaml:"timeout,omitempty"`
	Buffer  Buffer   `yaml:"buffer,omitempty"`
}

// CloudWatch Logs limits and defaults (sinks/cloudwatch.go cites the
// service documentation for each).
const (
	CloudWatchMaxMessage           = 1<<20 - 26
	DefaultCloudWatchTimeout       = time.Minute
	DefaultCloudWatchChunkLimit    = 8 << 20
	DefaultCloudWatchFlushInterval = 5 * time.Second
)

// CloudWatchRetentionDays are the values PutRetentionPolicy accepts.
var CloudWatchRetentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

func (o *CloudWatchLogsOutput) setDefaults(c *Config, name string) {
	if o.MaxMessageLength == 0 {
		o.MaxMessageLength = CloudWatchMaxMessage
	}
	if o.Oversize == "" {
		o.Oversize = OversizeSplit
	}
	if o.Timeout == 0 {
		o.Timeout = Duration(DefaultCloudWatchTimeout)
	}
	o.Buffer.setDefaults(c, name, "", DefaultCloudWatchChunkLimit, DefaultCloudWatchFlushInterval)
}

// Literal characters the service allows in names (placeholders are
// rendered and their values cleaned at run time).
var (
	cwGroupChars  = regexp.MustCompile(`^[.\-_/#A-Za-z0-9]*$`)
	cwStreamChars = regexp.MustCompile(`^[^:*]*$`)
)

func (o *CloudWatchLogsOutput) validate(v *validator, p string) {
	for _, n := range []struct {
		key, tmpl string
		chars     *regexp.Regexp
		allowed   string
	}{
		{"log_group_name", o.LogGroupName, cwGroupChars, "letters, digits and . - _ / #"},
		{"log_stream_name", o.LogStreamName, cwStreamChars, "anything but : and *"},
	} {
		if n.tmpl == "" {
			v.errorf(p+"."+n.key, "must be set (a name, or a template such as ${tag} or ${container_name})")
			continue
		}
		if lit := templateLiterals(n.tmpl); !n.chars.MatchString(lit) {
			v.errorf(p+"."+n.key, "%q: CloudWatch Logs allows %s in this name", n.tmpl, n.allowed)
		}
		if len(n.tmpl) > 512 && !strings.Contains(n.tmpl, "${") {
			v.errorf(p+"."+n.key, "longer than CloudWatch Logs' 512 characters")
		}
	}
	if o.RetentionInDays != 0 && !slices.Contains(CloudWatchRetentionDays, o.RetentionInDays) {
		v.errorf(p+".retention_in_days", "%d is not a retention CloudWatch Logs accepts (%s)", o.RetentionInDays, joinInts(CloudWatchRetentionDays))
	}
	if (o.RetentionInDays != 0 || o.KMSKeyID != "") && !o.AutoCreateStream {
		v.errorf(p+".auto_create_stream", "retention_in_days and kms_key_id apply to log groups maruta creates: set auto_create_stream: true")
	}
	if o.MaxMessageLength < 1 || o.MaxMessageLength > CloudWatchMaxMessage {
		v.errorf(p+".max_message_length", "must be from 1 to %d (1 MiB less the 26 bytes CloudWatch Logs counts per event)", CloudWatchMaxMessage)
	}
	oneOf(v, p+".oversize", o.Oversize, OversizeSplit, OversizeTruncate)
	if (o.AccessKeyID == "") != (o.SecretAccessKey == "") {
		v.errorf(p+".access_key_id", "access_key_id and secret_access_key must be set together")
	}
	if o.Timeout < 0 {
		v.errorf(p+".timeout", "must not be negative")
	}
	v.buffer(p+".buffer", &o.Buffer, "")
}
