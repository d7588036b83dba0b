package config

// Mode values: each key that takes one of a fixed set of words has a type
// of its own here, with a constant per word and the list validate checks
// against. Components compare with the constants; the words are written
// once, here.

// FsyncMode is buffer.fsync.
type FsyncMode string

const (
	FsyncAlways   FsyncMode = "always"
	FsyncInterval FsyncMode = "interval"
	FsyncOff      FsyncMode = "off"
)

// OverflowAction is buffer.overflow_action.
type OverflowAction string

const (
	OverflowBlock      OverflowAction = "block"
	OverflowDropOldest OverflowAction = "drop_oldest_chunk"
	OverflowThrow      OverflowAction = "throw"
)

// Format is an object output's format.
type Format string

const (
	FormatParquet Format = "parquet"
	FormatJSONL   Format = "jsonl"
)

// Compression is an object output's compression.
type Compression string

const (
	CompressionZstd   Compression = "zstd"
	CompressionSnappy Compression = "snappy"
	CompressionGzip   Compression = "gzip"
	CompressionNone   Compression = "none"
)

// SchemaMode is schema.mode.
type SchemaMode string

const (
	SchemaAuto     SchemaMode = "auto"
	SchemaDeclared SchemaMode = "declared"
)

// ForwardCompress is a forward output's compress.
type ForwardCompress string

const (
	CompressText ForwardCompress = "text"
	CompressGzip ForwardCompress = "gzip"
)

// HeartbeatType is a forward output's heartbeat_type.
type HeartbeatType string

const (
	HeartbeatTransport HeartbeatType = "transport"
	HeartbeatTCP       HeartbeatType = "tcp"
	HeartbeatUDP       HeartbeatType = "udp"
	HeartbeatNone      HeartbeatType = "none"
)

// ClientAuth is a listener's tls.client_auth ("" is none).
type ClientAuth string

const (
	ClientAuthNone    ClientAuth = "none"
	ClientAuthRequest ClientAuth = "request"
	ClientAuthRequire ClientAuth = "require"
)

// Unmatched is a rewrite_tag step's unmatched.
type Unmatched string

const (
	UnmatchedKeep Unmatched = "keep"
	UnmatchedDrop Unmatched = "drop"
)

// Oversize is what an event output does with a message over its limit.
type Oversize string

const (
	OversizeSplit    Oversize = "split"
	OversizeTruncate Oversize = "truncate"
)

// SyslogProtocol is a syslog output's protocol.
type SyslogProtocol string

const (
	SyslogTCP SyslogProtocol = "tcp"
	SyslogUDP SyslogProtocol = "udp"
)

// SyslogFraming is a syslog output's framing over TCP.
type SyslogFraming string

const (
	FramingOctetCounting SyslogFraming = "octet_counting"
	FramingNewline       SyslogFraming = "newline"
)
