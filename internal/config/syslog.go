package config

import (
	"strings"
	"time"
)

// SyslogOutput sends each event as an RFC 5424 syslog message over TCP
// (optionally TLS: Papertrail's logsN.papertrailapp.com:PORT) or UDP.
// Every fact about this output type is in this file: keys, defaults,
// validation.
type SyslogOutput struct {
	OutputCommon `yaml:",inline"`
	// Host and Port of the syslog server. Port defaults to 514 (6514 with
	// TLS).
	Host string `yaml:"host"`
	Port int    `yaml:"port,omitempty"`
	// Protocol is tcp (default) or udp.
	Protocol SyslogProtocol `yaml:"protocol,omitempty"`
	// TLS (tcp only) connects with TLS and verifies the server against
	// ca_file, or the system roots when ca_file is empty (`tls: {}`);
	// insecure_skip_verify turns verification off (tests only).
	TLS *TLS `yaml:"tls,omitempty"`
	// Framing (tcp) is octet_counting (default; RFC 6587 3.4.1 and RFC 5425:
	// "LEN SP MSG", a message may hold newlines) or newline (a message ends
	// at LF; a CR or LF inside a message is sent as #015 / #012, the escape
	// rsyslog itself uses, so the receiver still sees one message).
	Framing SyslogFraming `yaml:"framing,omitempty"`
	// AppName, Hostname, ProcID and MsgID are templates rendered per event:
	// fixed text, ${tag}, ${tag_parts[N]}, ${key} (a record key;
	// ${key:-default}). An empty result is sent as "-" (RFC 5424's nil
	// value); characters outside printable ASCII become '_' and the value
	// is cut to the RFC's length (48, 255, 128, 32). Defaults: app_name
	// ${tag}, hostname the host's name, procid and msgid "-".
	AppName  string `yaml:"app_name,omitempty"`
	Hostname string `yaml:"hostname,omitempty"`
	ProcID   string `yaml:"procid,omitempty"`
	MsgID    string `yaml:"msgid,omitempty"`
	// Severity and Facility are names (info, err, warning, …; user,
	// local0, …) or numbers. SeverityKey / FacilityKey name a record key
	// whose value (a name or number) is used instead when it is a valid
	// one. Defaults: info, user.
	Severity    string `yaml:"severity,omitempty"`
	SeverityKey string `yaml:"severity_key,omitempty"`
	Facility    string `yaml:"facility,omitempty"`
	FacilityKey string `yaml:"facility_key,omitempty"`
	// MessageKey is the record key whose value is the message (default
	// log); a record without it is sent as JSON. "" sends every record as
	// JSON.
	MessageKey *string `yaml:"message_key,omitempty"`
	// MaxMessageSize bounds a whole syslog message (header included) in
	// bytes. Default 8KiB (rsyslog's default maxMessageSize); Papertrail
	// takes up to about 100000.
	MaxMessageSize Size `yaml:"max_message_size,omitempty"`
	// Oversize is what happens to a longer message: split (default: into
	// several messages with the same header, in order) or truncate.
	Oversize Oversize `yaml:"oversize,omitempty"`
	// ConnectTimeout bounds connect + TLS handshake (default 10s);
	// SendTimeout one chunk's writes (default 60s).
	ConnectTimeout Duration `yaml:"connect_timeout,omitempty"`
	SendTimeout    Duration `yaml:"send_timeout,omitempty"`
	Buffer         Buffer   `yaml:"buffer,omitempty"`
}

// Syslog defaults.
const (
	DefaultSyslogPort          = 514
	DefaultSyslogTLSPort       = 6514
	DefaultSyslogMaxMessage    = 8 << 10
	DefaultSyslogChunkLimit    = 8 << 20
	DefaultSyslogFlushInterval = 5 * time.Second
	MaxSyslogUDPMessage        = 65000
	minSyslogMessage           = 480 // RFC 5426: every receiver takes 480 bytes
	DefaultSyslogAppName       = "${tag}"
	DefaultSyslogSeverity      = "info"
	DefaultSyslogFacility      = "user"
	DefaultSyslogMessageKey    = "log"
	defaultSyslogFraming       = FramingOctetCounting
)

// SyslogSeverities and SyslogFacilities are RFC 5424's names by code.
var (
	SyslogSeverities = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}
	SyslogFacilities = []string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
		"authpriv", "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3",
		"local4", "local5", "local6", "local7"}
)

// SyslogCode returns the code of a severity or facility given by name
// (also the common aliases error, warn, panic, crit…) or number.
func SyslogCode(names []string, s string) (int, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "error":
		s = "err"
	case "warn":
		s = "warning"
	case "panic":
		s = "emerg"
	case "critical":
		s = "crit"
	case "information", "informational":
		s = "info"
	}
	for i, n := range names {
		if n == s {
			return i, true
		}
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' || n > 100 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, s != "" && n < len(names)
}

func (o *SyslogOutput) setDefaults(c *Config, name string) {
	if o.Protocol == "" {
		o.Protocol = SyslogTCP
	}
	if o.Port == 0 {
		o.Port = DefaultSyslogPort
		if o.TLS != nil {
			o.Port = DefaultSyslogTLSPort
		}
	}
	if o.Framing == "" {
		o.Framing = defaultSyslogFraming
	}
	if o.AppName == "" {
		o.AppName = DefaultSyslogAppName
	}
	if o.Severity == "" {
		o.Severity = DefaultSyslogSeverity
	}
	if o.Facility == "" {
		o.Facility = DefaultSyslogFacility
	}
	if o.MessageKey == nil {
		k := DefaultSyslogMessageKey
		o.MessageKey = &k
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = DefaultSyslogMaxMessage
	}
	if o.Oversize == "" {
		o.Oversize = OversizeSplit
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = Duration(DefaultConnectTimeout)
	}
	if o.SendTimeout == 0 {
		o.SendTimeout = Duration(DefaultSendTimeout)
	}
	o.Buffer.setDefaults(c, name, "", DefaultSyslogChunkLimit, DefaultSyslogFlushInterval)
}

func (o *SyslogOutput) validate(v *validator, p string) {
	if o.Host == "" {
		v.errorf(p+".host", "must be set (the syslog server, e.g. logs1.papertrailapp.com)")
	}
	if o.Port < 1 || o.Port > 65535 {
		v.errorf(p+".port", "%d is not a port", o.Port)
	}
	oneOf(v, p+".protocol", o.Protocol, SyslogTCP, SyslogUDP)
	oneOf(v, p+".framing", o.Framing, FramingOctetCounting, FramingNewline)
	if o.TLS != nil {
		if o.Protocol == SyslogUDP {
			v.errorf(p+".tls", "TLS needs protocol tcp")
		}
		v.tls(p+".tls", o.TLS, false)
	}
	if _, ok := SyslogCode(SyslogSeverities, o.Severity); !ok {
		v.errorf(p+".severity", "%q is not a syslog severity (%s, or 0-7)", o.Severity, strings.Join(SyslogSeverities, ", "))
	}
	if _, ok := SyslogCode(SyslogFacilities, o.Facility); !ok {
		v.errorf(p+".facility", "%q is not a syslog facility (%s, or 0-23)", o.Facility, strings.Join(SyslogFacilities, ", "))
	}
	maxSize := int64(1 << 30)
	if o.Protocol == SyslogUDP {
		maxSize = MaxSyslogUDPMessage
	}
	if int64(o.MaxMessageSize) < minSyslogMessage || int64(o.MaxMessageSize) > maxSize {
		v.errorf(p+".max_message_size", "must be from %d to %s", minSyslogMessage, FormatSize(maxSize))
	}
	oneOf(v, p+".oversize", o.Oversize, OversizeSplit, OversizeTruncate)
	if o.ConnectTimeout < 0 || o.SendTimeout < 0 {
		v.errorf(p+".connect_timeout", "timeouts must not be negative")
	}
	v.buffer(p+".buffer", &o.Buffer, "")
}
