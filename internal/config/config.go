package config

// Config is a whole maruta configuration.
type Config struct {
	// Node names this maruta instance in object keys and chunk ids. Default:
	// the host name.
	Node string `yaml:"node,omitempty"`
	// DataDir holds buffers, dead letters, schemas and (by default) the local
	// lake. Default ./maruta-data.
	DataDir string `yaml:"data_dir,omitempty"`
	// ShutdownTimeout bounds how long a SIGTERM shutdown keeps uploading
	// before it leaves the rest on disk. Default 30s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout,omitempty"`
	Log             Log      `yaml:"log,omitempty"`
	HTTP            HTTP     `yaml:"http,omitempty"`
	Sources         []Source `yaml:"sources,omitempty"`
	Pipeline        []Step   `yaml:"pipeline,omitempty"`
	Outputs         []Output `yaml:"outputs,omitempty"`

	// File is the file the config was read from ("<embedded>" for the default).
	File   string `yaml:"-"`
	pos    positions
	faulty []string // keys with errors or left out, see Faulty
}

// Log configures maruta's own log.
type Log struct {
	Level  string `yaml:"level,omitempty"`  // debug, info (default), warn, error
	Format string `yaml:"format,omitempty"` // text (default) or json
}

// HTTP configures the HTTP server for /metrics and /healthz.
type HTTP struct {
	// Listen is host:port. Default 127.0.0.1:24220. "off" disables it.
	Listen string `yaml:"listen,omitempty"`
	// Pprof serves /debug/pprof/ when true. Default false.
	Pprof bool `yaml:"pprof,omitempty"`
	// ReadyStallAfter: /readyz fails when an output holds data and has not
	// delivered anything for this long. Default 5m.
	ReadyStallAfter Duration `yaml:"ready_stall_after,omitempty"`
	// ReadyHighWater: /readyz fails when an output's buffer is fuller than
	// this percentage of its total_limit_size. Default 90.
	ReadyHighWater int `yaml:"ready_high_water,omitempty"`
}

// Source is an input. Only type forward exists.
type Source struct {
	Type string `yaml:"type"`
	Name string `yaml:"name,omitempty"`
	// Listen is host:port for TCP (and the UDP heartbeat on the same port),
	// or unix:///path/to.sock. Default 127.0.0.1:24224.
	Listen string `yaml:"listen,omitempty"`
	// Heartbeat answers fluentd's UDP heartbeat on the TCP port. Default true.
	Heartbeat *bool     `yaml:"heartbeat,omitempty"`
	TLS       *TLS      `yaml:"tls,omitempty"`
	Security  *Security `yaml:"security,omitempty"`
	// ChunkSizeLimit is the largest request accepted, in bytes as sent
	// (fluentd's name). Default 64MiB.
	ChunkSizeLimit Size `yaml:"chunk_size_limit,omitempty"`
	// MaxDecompressedSize bounds a compressed request after decompression,
	// and the memory decompression holds for all connections of the source
	// together (a request that needs more waits, then is refused; one
	// alone always gets up to this). Default 256MiB.
	MaxDecompressedSize Size `yaml:"max_decompressed_size,omitempty"`
	// MaxDepth bounds msgpack nesting in a request. Default 100.
	MaxDepth int `yaml:"max_depth,omitempty"`
	// MaxConnections bounds open connections; more wait in the kernel's
	// backlog. Default 10000.
	MaxConnections int `yaml:"max_connections,omitempty"`
	// IdleTimeout closes a connection that sent nothing for this long.
	// Default 0 (off): Docker keeps its connection open while idle.
	IdleTimeout Duration `yaml:"idle_timeout,omitempty"`
	// ShutdownQuiet: on shutdown the source stops accepting and reads each
	// open connection on until nothing arrived on it for this long (or
	// shutdown_timeout ends), so lines a client wrote before it learnt of
	// the stop are stored. Default 1s.
	ShutdownQuiet Duration `yaml:"shutdown_quiet,omitempty"`
	// SourceAddressKey, when set, adds the peer's IP address to each record
	// under this key (fluentd's name).
	SourceAddressKey string `yaml:"source_address_key,omitempty"`
	// SourceHostnameKey, when set, adds the peer's host name (reverse DNS,
	// cached; the address when lookup fails) under this key.
	SourceHostnameKey string `yaml:"source_hostname_key,omitempty"`
	// Dedup suppresses resent requests whose chunk id was accepted recently:
	// acked again, stored once, also after a restart. On by default.
	Dedup *Dedup `yaml:"dedup,omitempty"`
}

// TLS configures a TLS listener or client. Min version TLS 1.2.
type TLS struct {
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// CAFile verifies peers: clients of a listener when ClientAuth is set,
	// the server for a client.
	CAFile string `yaml:"ca_file,omitempty"`
	// ClientAuth for a listener: none (default), request, require.
	ClientAuth ClientAuth `yaml:"client_auth,omitempty"`
	// ServerName for a client: the name checked in the server certificate.
	ServerName string `yaml:"server_name,omitempty"`
	// InsecureSkipVerify for a client: do not verify the server. Tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty"`
}

// Security is fluentd's <security> section: the HELO/PING/PONG handshake.
type Security struct {
	SelfHostname string `yaml:"self_hostname,omitempty"`
	SharedKey    string `yaml:"shared_key,omitempty"`
	UserAuth     bool   `yaml:"user_auth,omitempty"`
	Users        []User `yaml:"users,omitempty"`
	// For a client (forward output): the user it authenticates as.
	Username string `yaml:"username,omitempty"`
	Password string `yaml:"password,omitempty"`
}

// User is one username/password pair for user_auth.
type User struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Dedup is the Forward server's duplicate suppression: a request whose
// chunk id was accepted within the window is acked again without being
// stored. The ids are kept in memory and with the events in the buffers,
// so a restart (also after kill -9 or a power loss) knows them again
// (buffer/FORMAT.md, "Dedup marks"). The index is shared by the sources of
// a process: its bounds are the largest window and max_entries among them.
type Dedup struct {
	// Enabled turns dedup off with false. Default true.
	Enabled *bool `yaml:"enabled,omitempty"`
	// Window is how long an accepted chunk id is remembered, on the wall
	// clock (across restarts too). Default 10m.
	Window Duration `yaml:"window,omitempty"`
	// MaxEntries bounds memory (about 150 bytes per id) and the dedup
	// record: the oldest ids are forgotten first, so at R acked requests
	// per second ids are kept for min(window, max_entries / R). Default
	// 100000.
	MaxEntries int `yaml:"max_entries,omitempty"`
}

// On reports whether d turns dedup on (nil: off).
func (d *Dedup) On() bool { return d != nil && (d.Enabled == nil || *d.Enabled) }
