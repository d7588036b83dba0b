package config

// Output is one output: exactly one of the typed pointers is set, selected by
// Type. An event goes to the first output whose Match matches its tag.
type Output struct {
	OutputCommon
	Stdout  *StdoutOutput  `yaml:"-"`
	Null    *NullOutput    `yaml:"-"`
	File    *FileOutput    `yaml:"-"`
	S3      *S3Output      `yaml:"-"`
	Forward *ForwardOutput `yaml:"-"`
	Copy    *CopyOutput    `yaml:"-"`

	CloudWatchLogs *CloudWatchLogsOutput `yaml:"-"`
	Syslog         *SyslogOutput         `yaml:"-"`
	TreasureData   *TreasureDataOutput   `yaml:"-"`
}

// OutputCommon holds the keys every output has.
type OutputCommon struct {
	// Type is stdout, null, file, s3, forward, cloudwatch_logs, syslog,
	// treasure_data or copy.
	Type string `yaml:"type"`
	// Name identifies the output in metrics, buffer folders and object keys:
	// letters, digits, '_' and '-'. Default: type and index ("file_0"); copy
	// stores default to "<copy name>_<index>".
	Name string `yaml:"name,omitempty"`
	// Match is a fluentd tag pattern. Default "**". Ignored for copy stores.
	Match string `yaml:"match,omitempty"`
}

// StdoutOutput prints events as JSON lines on standard output, unbuffered.
type StdoutOutput struct {
	OutputCommon `yaml:",inline"`
}

// NullOutput discards events (counted).
type NullOutput struct {
	OutputCommon `yaml:",inline"`
}

// CopyOutput sends every event to each of its stores (fluentd's copy).
type CopyOutput struct {
	OutputCommon `yaml:",inline"`
	Stores       []Output `yaml:"stores"`
}

// Encoding selects how a chunk becomes an object.
type Encoding struct {
	// Format is parquet (default) or jsonl.
	Format Format `yaml:"format,omitempty"`
	// Compression: for parquet zstd (default), snappy, gzip or none; for
	// jsonl none (default) or gzip.
	Compression Compression `yaml:"compression,omitempty"`
	// SortBy orders the rows of each Parquet file by these record keys,
	// then optionally "time" (the event time; last). Default
	// [container_name, time]: a file
	// holds one container after another, so the row groups' statistics let
	// Athena and DuckDB skip the row groups of other containers (WHERE
	// container_name = …) and the container columns compress to a few KB.
	// A record without a key sorts first (records that have no
	// container_name are in time order). [] keeps the order of arrival.
	SortBy []string `yaml:"sort_by,omitempty"`
	// SortByTime is sort_by: [time] (the older key; not with sort_by).
	SortByTime bool `yaml:"sort_by_time,omitempty"`
	// TargetFileSize seals a chunk when it is expected to encode to an
	// object of about this size, from the compression ratio measured on the
	// output's deliveries (the first files use a conservative estimate).
	// chunk_limit_size still caps the chunk and flush_interval still bounds
	// how long a file waits. 0 (default): chunk_limit_size alone.
	TargetFileSize Size `yaml:"target_file_size,omitempty"`
	// RowGroupRows bounds rows per Parquet row group (and encoder memory).
	// Default 65536.
	RowGroupRows int `yaml:"row_group_rows,omitempty"`
	// Schema of the Parquet table.
	Schema *Schema `yaml:"schema,omitempty"`
	// Athena names the table for `maruta athena ddl` and the optional API calls.
	Athena *Athena `yaml:"athena,omitempty"`
	// TimeKey, for jsonl: add the event time to each line under this key
	// (fluentd include_time_key). Empty: no time key. Default "time".
	TimeKey string `yaml:"time_key,omitempty"`
	// TimeFormat, for jsonl: strftime for TimeKey. Default RFC 3339 with
	// milliseconds.
	TimeFormat string `yaml:"time_format,omitempty"`
}

// Schema is a Parquet table's columns.
type Schema struct {
	// Mode is auto (default: inferred from records, persisted under
	// data_dir, new columns appended) or declared (exactly Columns).
	Mode    SchemaMode `yaml:"mode,omitempty"`
	Columns []Column   `yaml:"columns,omitempty"`
	// OverflowColumn receives values that conflict with their column's type,
	// and, in declared mode, keys without a column. Default _overflow.
	OverflowColumn string `yaml:"overflow_column,omitempty"`
	// MaxColumns bounds the columns auto mode adds to a table; values of
	// further new keys go to the overflow column. Default 1000.
	MaxColumns int `yaml:"max_columns,omitempty"`
}

// Column is a declared column.
type Column struct {
	Name string `yaml:"name"`
	// Type: string, bigint, int, double, boolean, timestamp,
	// map<string,string>, json (nested values as JSON text).
	Type string `yaml:"type"`
}

// Athena names a table and, optionally, where to run DDL through the API.
type Athena struct {
	// Database defaults to "default"; Table to the output name in lower
	// case with '-' as '_'.
	Database       string `yaml:"database,omitempty"`
	Table          string `yaml:"table,omitempty"`
	Workgroup      string `yaml:"workgroup,omitempty"`
	OutputLocation string `yaml:"output_location,omitempty"`
	Region         string `yaml:"region,omitempty"`
	// Location overrides the table LOCATION (an s3:// URI). Default: for s3
	// outputs the bucket and the path's constant prefix; for file outputs
	// the folder as a file:// URI (for a lake later copied to S3, set this).
	Location string `yaml:"location,omitempty"`
	// Partitions names the partition columns that path placeholders
	// (${tag}, ${tag_parts[N]}, chunk keys) become, and optionally lists
	// their values. Default names: tag, tag_part_N, the chunk key.
	Partitions []AthenaPartition `yaml:"partitions,omitempty"`
}

// AthenaPartition describes the partition column of one path placeholder.
type AthenaPartition struct {
	// Placeholder as written in the path without ${}: tag, tag_parts[2], or
	// a chunk key.
	Placeholder string `yaml:"placeholder"`
	// Name of the partition column.
	Name string `yaml:"name,omitempty"`
	// Values, when set, makes an enum projection (queries need not filter
	// on the column); otherwise the projection is injected (queries must
	// filter on it with =).
	Values []string `yaml:"values,omitempty"`
}

// FileOutput writes the lake layout (or JSON lines) under a local folder.
type FileOutput struct {
	OutputCommon `yaml:",inline"`
	Encoding     `yaml:",inline"`
	// Path is the folder template: strftime on the event time in UTC plus
	// ${tag} and ${tag_parts[N]}. It is a folder whether or not it ends
	// with '/' (unlike an S3 path, a key prefix). Default
	// <data_dir>/lake/tag=${tag}/dt=%Y-%m-%d/hour=%H/.
	Path string `yaml:"path,omitempty"`
	// ObjectKey is the file name template relative to nothing: it must
	// contain ${chunk_id}. Default ${path}${node}-${chunk_id}.${ext}.
	ObjectKey string `yaml:"object_key,omitempty"`
	Buffer    Buffer `yaml:"buffer,omitempty"`
}

// S3Output writes objects to S3 or an S3-compatible server.
type S3Output struct {
	OutputCommon `yaml:",inline"`
	Encoding     `yaml:",inline"`
	Bucket       string `yaml:"bucket"`
	Region       string `yaml:"region,omitempty"`
	// Endpoint for S3-compatible servers, e.g. http://127.0.0.1:7070.
	Endpoint string `yaml:"endpoint,omitempty"`
	// ForcePathStyle uses bucket-in-path addressing. Default true when an
	// endpoint is set, here or in the environment (AWS_ENDPOINT_URL_S3,
	// AWS_ENDPOINT_URL); unset (nil) otherwise, meaning virtual-hosted style.
	ForcePathStyle *bool `yaml:"force_path_style,omitempty"`
	// AccessKeyID and SecretAccessKey set static credentials. Default: the
	// SDK's credential chain (environment, web identity, ECS, EKS pod
	// identity, IMDSv2).
	AccessKeyID     string `yaml:"access_key_id,omitempty"`
	SecretAccessKey string `yaml:"secret_access_key,omitempty"`
	// Path is the key prefix template. Default tag=${tag}/dt=%Y-%m-%d/hour=%H/.
	Path      string `yaml:"path,omitempty"`
	ObjectKey string `yaml:"object_key,omitempty"`
	// ServerSideEncryption: AES256 or aws:kms.
	ServerSideEncryption string `yaml:"server_side_encryption,omitempty"`
	SSEKMSKeyID          string `yaml:"sse_kms_key_id,omitempty"`
	BucketKeyEnabled     bool   `yaml:"bucket_key_enabled,omitempty"`
	StorageClass         string `yaml:"storage_class,omitempty"`
	// MultipartThreshold: objects above it are uploaded in parts. Default 16MiB.
	MultipartThreshold Size `yaml:"multipart_threshold,omitempty"`
	// PartSize for multipart uploads (at least 5MiB, S3's minimum; parts
	// are read from the staged file, three at a time). Default 8MiB.
	PartSize Size `yaml:"part_size,omitempty"`
	// Timeout bounds one upload. Default 5m.
	Timeout Duration `yaml:"timeout,omitempty"`
	Buffer  Buffer   `yaml:"buffer,omitempty"`
}

// ForwardOutput sends chunks to other Forward servers (maruta aggregators,
// fluentd, Fluent Bit): the agent side of the agent → aggregator hop.
//
// Each buffer chunk goes to one server, chosen per chunk by weighted
// rendezvous hashing over the healthy active servers (the same chunk keeps
// going to the same server while that server is healthy, so a resend meets
// the server's dedup window). A chunk is sent as PackedForward requests, one
// per tag and at most max_request_size each, each with a `chunk` option
// derived from the node name, the output name and the buffer chunk id (the
// same after a restart) and acked before the next is sent; the buffer
// deletes the chunk only when every request was acked; parts acked before
// a failure are not sent again (remembered under
// <data_dir>/forward/<output>/ across restarts). Failures (connect, TLS,
// handshake, send, connection closed) mark the server down and the request
// moves to the next healthy server, except a request the server may have
// stored (written whole, no ack: see ack_timeout_hold and lost_ack_hold);
// when none is left the chunk stays buffered and is retried with the
// buffer's backoff.
type ForwardOutput struct {
	OutputCommon `yaml:",inline"`
	// Servers are the destinations. At least one must be active (not
	// standby).
	Servers []ForwardServer `yaml:"servers"`
	// RequireAckResponse sends every request with a chunk option and waits
	// for the server's ack before the chunk may be deleted. Default true.
	// With false a request counts as delivered once written to the socket:
	// a server crash can then lose data.
	RequireAckResponse *bool `yaml:"require_ack_response,omitempty"`
	// AckResponseTimeout bounds the wait for one ack; a server that does not
	// answer in time is marked down. Default 60s.
	AckResponseTimeout Duration `yaml:"ack_response_timeout,omitempty"`
	// AckTimeoutHold: after a request's ack timed out, the server may be
	// paused (GC, SIGSTOP, a partition) and store the request when it
	// resumes, so a copy sent to another server would be stored twice.
	// The part is therefore resent only to the same server (whose dedup
	// window absorbs the copy) for this long; then it fails over. Other
	// chunks move to other servers at once. 0 fails over at once
	// (fluentd's behaviour). Default (unset) 2m.
	AckTimeoutHold *Duration `yaml:"ack_timeout_hold,omitempty"`
	// LostAckHold: after the connection to a server broke while a request
	// written to it whole waited for its ack (the server crashed or was
	// killed, maybe after it stored the request and before it acked), the
	// request is in doubt. The part is then resent only to the same server
	// for this long, so that the restarted server's dedup index (which
	// survives restarts) acks it without storing it again; then it fails
	// over. While the part waits the chunk stays buffered and is retried;
	// other chunks move to other servers at once. This bound also applies
	// to an ack-timeout hold once the held server refuses connections. 0
	// fails over at once (fluentd's behaviour). Default (unset) 30s.
	LostAckHold *Duration `yaml:"lost_ack_hold,omitempty"`
	// Compress is text (default) or gzip (CompressedPackedForward).
	Compress ForwardCompress `yaml:"compress,omitempty"`
	// TLS connects with TLS: ca_file verifies the server (system roots when
	// empty), cert_file + key_file present a client certificate,
	// server_name is checked in the server certificate (default: the
	// server's host), insecure_skip_verify turns verification off (tests).
	TLS *TLS `yaml:"tls,omitempty"`
	// Security runs fluentd's shared-key handshake: shared_key,
	// self_hostname (default: the host name), and username + password for
	// servers with user_auth. A refused handshake marks the server down and
	// is logged as an error; chunks stay buffered and are retried (a key
	// being rotated on the servers recovers without dead letters).
	Security *Security `yaml:"security,omitempty"`
	// HeartbeatType is how healthy servers are watched every
	// heartbeat_interval: transport (default, fluentd's: a connection made
	// the way chunks go — connect, and with tls the TLS handshake and with
	// security the shared-key handshake — then closed, so a server with TLS
	// or a shared key sees a whole session, not a bare connect it logs as
	// an error), tcp (fluentd's older name of transport), udp (fluentd's UDP
	// heartbeat on the same port; down after 3 missed replies; unix sockets
	// use transport) or none. A server that is down
	// is probed every heartbeat_interval whatever the type: connect, TLS,
	// handshake and, with require_ack_response, an empty request that must be
	// acked; it takes chunks again only after such a probe succeeded.
	HeartbeatType HeartbeatType `yaml:"heartbeat_type,omitempty"`
	// HeartbeatInterval is the period of heartbeats and probes. Default 1s.
	HeartbeatInterval Duration `yaml:"heartbeat_interval,omitempty"`
	// ConnectTimeout bounds connect + TLS + handshake. Default 10s.
	ConnectTimeout Duration `yaml:"connect_timeout,omitempty"`
	// SendTimeout bounds writing one request. Default 60s.
	SendTimeout Duration `yaml:"send_timeout,omitempty"`
	// Keepalive reuses connections between requests and chunks. Default
	// true. With false each chunk opens its own connection.
	Keepalive *bool `yaml:"keepalive,omitempty"`
	// KeepaliveTimeout is the longest a connection is reused after it was
	// opened; then a new one is dialed, which re-resolves the server's host
	// name (a load balancer's targets change) and spreads agents over them
	// again. Default 5m (below an AWS NLB's 350s idle timeout).
	KeepaliveTimeout Duration `yaml:"keepalive_timeout,omitempty"`
	// MaxRequestSize bounds one request's entries (before compression): a
	// chunk is split into several acked requests. It must not exceed the
	// servers' chunk_size_limit. Default 8MiB.
	MaxRequestSize Size   `yaml:"max_request_size,omitempty"`
	Buffer         Buffer `yaml:"buffer,omitempty"`
}

// ForwardServer is one destination.
type ForwardServer struct {
	// Name labels the server in metrics and logs, and seeds which chunks it
	// gets. Default host:port.
	Name string `yaml:"name,omitempty"`
	// Host is a DNS name (resolved again on every new connection), an IP
	// address, or unix:///path for a unix socket.
	Host string `yaml:"host"`
	// Port defaults to 24224.
	Port int `yaml:"port,omitempty"`
	// Weight is the server's share of chunks among the healthy active
	// servers. Default 60 (fluentd's).
	Weight int `yaml:"weight,omitempty"`
	// Standby servers get chunks only while no active server is healthy.
	Standby bool `yaml:"standby,omitempty"`
}

// Buffer configures an output's disk chunk buffer (fluentd names).
type Buffer struct {
	// Path is the buffer folder. Default <data_dir>/buffer/<output name>.
	Path string `yaml:"path,omitempty"`
	// ChunkLimitSize seals a chunk at this many bytes. Default 64MiB.
	ChunkLimitSize Size `yaml:"chunk_limit_size,omitempty"`
	// TotalLimitSize bounds the buffer on disk. Default 2GiB.
	TotalLimitSize Size `yaml:"total_limit_size,omitempty"`
	// FlushInterval seals a chunk this long after it was opened. Default 60s.
	FlushInterval Duration `yaml:"flush_interval,omitempty"`
	// Timekey is the time slice of a chunk (event time, UTC). Default: the
	// finest strftime unit in the output's path, else 1h.
	Timekey Duration `yaml:"timekey,omitempty"`
	// TimekeyWait seals a slice's chunk this long after the slice ended.
	// A chunk opened later than that (late events) waits FlushInterval.
	// Default 1m.
	TimekeyWait Duration `yaml:"timekey_wait,omitempty"`
	// ChunkKeys adds record keys to the chunk key; the path may use ${key}.
	ChunkKeys []string `yaml:"chunk_keys,omitempty"`
	// Fsync is always (default), interval or off.
	Fsync         FsyncMode `yaml:"fsync,omitempty"`
	FsyncInterval Duration  `yaml:"fsync_interval,omitempty"`
	// OverflowAction is block (default), drop_oldest_chunk or throw.
	OverflowAction OverflowAction `yaml:"overflow_action,omitempty"`
	// FlushThreadCount is the number of flush workers. Default 2.
	FlushThreadCount int `yaml:"flush_thread_count,omitempty"`
	// MaxOpenChunks caps chunks open for appends; the oldest is sealed first.
	// Default 64.
	MaxOpenChunks    int      `yaml:"max_open_chunks,omitempty"`
	RetryWait        Duration `yaml:"retry_wait,omitempty"`
	RetryMaxInterval Duration `yaml:"retry_max_interval,omitempty"`
	RetryTimeout     Duration `yaml:"retry_timeout,omitempty"`
	RetryMaxTimes    int      `yaml:"retry_max_times,omitempty"`
	RetryForever     bool     `yaml:"retry_forever,omitempty"`
	// RetryRandomize adds jitter to the backoff. Default true.
	RetryRandomize *bool `yaml:"retry_randomize,omitempty"`
}
