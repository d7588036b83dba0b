package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Defaults, in one place. The README's configuration reference lists them.
const (
	DefaultDataDir         = "./maruta-data"
	DefaultShutdownTimeout = 30 * time.Second
	DefaultHTTPListen      = "127.0.0.1:24220"
	DefaultReadyStallAfter = 5 * time.Minute
	DefaultReadyHighWater  = 90
	DefaultForwardListen   = "127.0.0.1:24224"
	DefaultForwardPort     = 24224

	DefaultChunkSizeLimit      = 64 << 20
	DefaultMaxDecompressedSize = 256 << 20
	DefaultMaxDepth            = 100
	DefaultMaxConnections      = 10000
	DefaultDedupWindow         = 10 * time.Minute
	DefaultShutdownQuiet       = time.Second
	DefaultDedupMaxEntries     = 100000

	DefaultChunkLimitSize        = 64 << 20
	DefaultForwardChunkLimitSize = 8 << 20
	DefaultTotalLimitSize        = 2 << 30
	DefaultFlushInterval         = 60 * time.Second
	DefaultForwardFlushInterval  = 5 * time.Second
	DefaultTimekey               = time.Hour
	DefaultTimekeyWait           = time.Minute
	DefaultFsyncInterval         = time.Second
	DefaultFlushThreadCount      = 2
	DefaultMaxOpenChunks         = 64
	DefaultRetryWait             = time.Second
	DefaultRetryMaxInterval      = 5 * time.Minute
	DefaultRetryTimeout          = 72 * time.Hour

	DefaultLakePath       = "tag=${tag}/dt=%Y-%m-%d/hour=%H/"
	DefaultObjectKey      = "${path}${node}-${chunk_id}.${ext}"
	DefaultRowGroupRows   = 65536
	DefaultOverflowColumn = "_overflow"
	DefaultMaxColumns     = 1000

	DefaultMultipartThreshold = 16 << 20
	DefaultPartSize           = 8 << 20
	DefaultS3Timeout          = 5 * time.Minute

	DefaultForwardWeight      = 60
	DefaultAckResponseTimeout = 60 * time.Second
	DefaultHeartbeatInterval  = time.Second
	DefaultConnectTimeout     = 10 * time.Second
	DefaultSendTimeout        = 60 * time.Second
	DefaultMaxRequestSize     = 8 << 20
	DefaultKeepaliveTimeout   = 5 * time.Minute
	DefaultAckTimeoutHold     = 2 * time.Minute
	DefaultLostAckHold        = 30 * time.Second

	DefaultConcatTimeout = 5 * time.Second
	DefaultConcatMaxSize = 1 << 20
	// DefaultCollisionPrefix is what a parse step's protect_keys put
	// before a parsed key that collides with a protected one.
	DefaultCollisionPrefix  = "app_"
	DefaultConcatMaxPending = 10000
	DefaultMaxHops          = 8
)

var nodeUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// DefaultNode is the host name made safe for object keys, or "maruta".
func DefaultNode() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "maruta"
	}
	return nodeUnsafe.ReplaceAllString(h, "_")
}

func (c *Config) setDefaults() {
	if c.Node == "" {
		c.Node = DefaultNode()
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultHTTPListen
	}
	if c.HTTP.ReadyStallAfter == 0 {
		c.HTTP.ReadyStallAfter = Duration(DefaultReadyStallAfter)
	}
	if c.HTTP.ReadyHighWater == 0 {
		c.HTTP.ReadyHighWater = DefaultReadyHighWater
	}
	for i := range c.Sources {
		c.Sources[i].setDefaults(i)
	}
	for i := range c.Pipeline {
		c.Pipeline[i].setDefaults(i)
	}
	for i := range c.Outputs {
		c.Outputs[i].setDefaults(c, fmt.Sprintf("%s_%d", c.Outputs[i].Type, i), false)
	}
}

func (s *Source) setDefaults(i int) {
	if s.Name == "" {
		s.Name = fmt.Sprintf("%s_%d", s.Type, i)
	}
	if s.Listen == "" {
		s.Listen = DefaultForwardListen
	}
	if s.Heartbeat == nil {
		t := true
		s.Heartbeat = &t
	}
	if s.ChunkSizeLimit == 0 {
		s.ChunkSizeLimit = DefaultChunkSizeLimit
	}
	if s.MaxDecompressedSize == 0 {
		s.MaxDecompressedSize = DefaultMaxDecompressedSize
	}
	if s.MaxDepth == 0 {
		s.MaxDepth = DefaultMaxDepth
	}
	if s.MaxConnections == 0 {
		s.MaxConnections = DefaultMaxConnections
	}
	if s.ShutdownQuiet == 0 {
		s.ShutdownQuiet = Duration(DefaultShutdownQuiet)
	}
	if s.Dedup == nil {
		s.Dedup = &Dedup{}
	}
	if d := s.Dedup; d.On() {
		if d.Window == 0 {
			d.Window = Duration(DefaultDedupWindow)
		}
		if d.MaxEntries == 0 {
			d.MaxEntries = DefaultDedupMaxEntries
		}
	}
}

func (s *Step) setDefaults(i int) {
	if s.Name == "" {
		s.Name = fmt.Sprintf("%s_%d", s.Type, i)
	}
	if s.Match == "" {
		s.Match = "**"
	}
	if b := s.body(); b != nil {
		b.setDefaults()
	}
	s.syncCommon()
}

func (x *ParseStep) setDefaults() {
	if x.OnlyObjects == nil {
		t := true
		x.OnlyObjects = &t
	}
	if len(x.ProtectKeys) > 0 && x.CollisionPrefix == "" {
		x.CollisionPrefix = DefaultCollisionPrefix
	}
}

func (x *RewriteTagStep) setDefaults() {
	if x.Unmatched == "" {
		x.Unmatched = UnmatchedKeep
	}
	if x.MaxHops == 0 {
		x.MaxHops = DefaultMaxHops
	}
}

func (x *ConcatPartialsStep) setDefaults() {
	if x.Key == "" {
		x.Key = "log"
	}
	if x.Timeout == 0 {
		x.Timeout = Duration(DefaultConcatTimeout)
	}
	if x.MaxSize == 0 {
		x.MaxSize = DefaultConcatMaxSize
	}
	if x.MaxPending == 0 {
		x.MaxPending = DefaultConcatMaxPending
	}
}

func (o *Output) setDefaults(c *Config, name string, store bool) {
	if o.Name == "" {
		o.Name = name
	}
	if o.Match == "" && !store {
		o.Match = "**"
	}
	if b := o.body(); b != nil {
		b.setDefaults(c, o.Name)
	}
	o.syncCommon()
}

func (f *FileOutput) setDefaults(c *Config, name string) {
	if f.Path == "" {
		f.Path = filepath.ToSlash(filepath.Join(c.DataDir, "lake")) + "/" + DefaultLakePath
	}
	if !strings.HasSuffix(f.Path, "/") {
		f.Path += "/" // a folder, not a file-name prefix as in S3
	}
	if f.ObjectKey == "" {
		f.ObjectKey = DefaultObjectKey
	}
	f.Encoding.setDefaults()
	f.Buffer.setDefaults(c, name, f.Path, lakeChunkLimit(&f.Encoding, &f.Buffer), DefaultFlushInterval)
}

func (s *S3Output) setDefaults(c *Config, name string) {
	if s.Path == "" {
		s.Path = DefaultLakePath
	}
	if s.ObjectKey == "" {
		s.ObjectKey = DefaultObjectKey
	}
	if s.ForcePathStyle == nil && s.Endpoint != "" {
		// Without an endpoint it stays nil: the sink picks path style
		// when the endpoint comes from the environment.
		v := true
		s.ForcePathStyle = &v
	}
	if s.MultipartThreshold == 0 {
		s.MultipartThreshold = DefaultMultipartThreshold
	}
	if s.PartSize == 0 {
		s.PartSize = DefaultPartSize
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(DefaultS3Timeout)
	}
	s.Encoding.setDefaults()
	s.Buffer.setDefaults(c, name, s.Path, lakeChunkLimit(&s.Encoding, &s.Buffer), DefaultFlushInterval)
}

func (f *ForwardOutput) setDefaults(c *Config, name string) {
	for i := range f.Servers {
		sv := &f.Servers[i]
		if sv.Port == 0 {
			sv.Port = DefaultForwardPort
		}
		if sv.Weight == 0 {
			sv.Weight = DefaultForwardWeight
		}
		if sv.Name == "" {
			sv.Name = fmt.Sprintf("%s:%d", sv.Host, sv.Port)
		}
	}
	if f.RequireAckResponse == nil {
		t := true
		f.RequireAckResponse = &t
	}
	if f.AckResponseTimeout == 0 {
		f.AckResponseTimeout = Duration(DefaultAckResponseTimeout)
	}
	if f.Compress == "" {
		f.Compress = CompressText
	}
	if f.HeartbeatType == "" {
		f.HeartbeatType = HeartbeatTransport
	}
	if f.HeartbeatInterval == 0 {
		f.HeartbeatInterval = Duration(DefaultHeartbeatInterval)
	}
	if f.ConnectTimeout == 0 {
		f.ConnectTimeout = Duration(DefaultConnectTimeout)
	}
	if f.SendTimeout == 0 {
		f.SendTimeout = Duration(DefaultSendTimeout)
	}
	if f.Keepalive == nil {
		t := true
		f.Keepalive = &t
	}
	if f.MaxRequestSize == 0 {
		f.MaxRequestSize = DefaultMaxRequestSize
	}
	if f.KeepaliveTimeout == 0 {
		f.KeepaliveTimeout = Duration(DefaultKeepaliveTimeout)
	}
	if f.AckTimeoutHold == nil {
		d := Duration(DefaultAckTimeoutHold)
		f.AckTimeoutHold = &d
	}
	if f.LostAckHold == nil {
		d := Duration(DefaultLostAckHold)
		f.LostAckHold = &d
	}
	f.Buffer.setDefaults(c, name, "", DefaultForwardChunkLimitSize, DefaultForwardFlushInterval)
}

func (o *CopyOutput) setDefaults(c *Config, name string) {
	for i := range o.Stores {
		o.Stores[i].setDefaults(c, fmt.Sprintf("%s_%d", name, i), true)
	}
}

func (e *Encoding) setDefaults() {
	if e.Format == "" {
		e.Format = FormatParquet
	}
	if e.Compression == "" {
		if e.Format == FormatParquet {
			e.Compression = CompressionZstd
		} else {
			e.Compression = CompressionNone
		}
	}
	if e.RowGroupRows == 0 {
		e.RowGroupRows = DefaultRowGroupRows
	}
	if e.Format == FormatParquet && e.SortBy == nil {
		e.SortBy = []string{"container_name", "time"}
		if e.SortByTime {
			e.SortBy = []string{"time"}
		}
	}
	if e.Format == FormatParquet {
		if e.Schema == nil {
			e.Schema = &Schema{}
		}
		if e.Schema.Mode == "" {
			if len(e.Schema.Columns) > 0 {
				e.Schema.Mode = SchemaDeclared
			} else {
				e.Schema.Mode = SchemaAuto
			}
		}
		if e.Schema.OverflowColumn == "" {
			e.Schema.OverflowColumn = DefaultOverflowColumn
		}
		if e.Schema.MaxColumns == 0 {
			e.Schema.MaxColumns = DefaultMaxColumns
		}
	}
	if e.Format == FormatJSONL && e.TimeKey == "" {
		e.TimeKey = "time"
	}
}

// lakeChunkLimit is the default chunk_limit_size of a file or s3 output:
// 64MiB, or with target_file_size room for that file at a 16× compression
// ratio (at most half of total_limit_size), so target_file_size, not the
// default chunk limit, decides when chunks seal.
func lakeChunkLimit(e *Encoding, b *Buffer) int64 {
	limit := int64(DefaultChunkLimitSize)
	if t := int64(e.TargetFileSize); t > 0 {
		total := int64(b.TotalLimitSize)
		if total == 0 {
			total = DefaultTotalLimitSize
		}
		limit = max(limit, min(16*t, total/2))
	}
	return limit
}

func (b *Buffer) setDefaults(c *Config, name, path string, chunkLimit int64, flush time.Duration) {
	if b.Path == "" {
		b.Path = filepath.Join(c.DataDir, "buffer", name)
	}
	if b.ChunkLimitSize == 0 {
		b.ChunkLimitSize = Size(chunkLimit)
	}
	if b.TotalLimitSize == 0 {
		b.TotalLimitSize = DefaultTotalLimitSize
	}
	if b.FlushInterval == 0 {
		b.FlushInterval = Duration(flush)
	}
	if b.Timekey == 0 && path != "" {
		if g := PathGranularity(path); g > 0 && g < DefaultTimekey {
			b.Timekey = Duration(g)
		} else {
			b.Timekey = Duration(DefaultTimekey)
		}
	}
	if b.TimekeyWait == 0 {
		b.TimekeyWait = Duration(DefaultTimekeyWait)
	}
	if b.Fsync == "" {
		b.Fsync = FsyncAlways
	}
	if b.FsyncInterval == 0 {
		b.FsyncInterval = Duration(DefaultFsyncInterval)
	}
	if b.OverflowAction == "" {
		b.OverflowAction = OverflowBlock
	}
	if b.FlushThreadCount == 0 {
		b.FlushThreadCount = DefaultFlushThreadCount
	}
	if b.MaxOpenChunks == 0 {
		b.MaxOpenChunks = DefaultMaxOpenChunks
	}
	if b.RetryWait == 0 {
		b.RetryWait = Duration(DefaultRetryWait)
	}
	if b.RetryMaxInterval == 0 {
		b.RetryMaxInterval = Duration(DefaultRetryMaxInterval)
	}
	if b.RetryTimeout == 0 && b.RetryMaxTimes == 0 && !b.RetryForever {
		b.RetryTimeout = Duration(DefaultRetryTimeout)
	}
	if b.RetryRandomize == nil {
		t := true
		b.RetryRandomize = &t
	}
}

// PathGranularity returns the span of the finest strftime unit in a path
// template: 1s for %S, 1m for %M, 1h for %H, 24h for a day or month, 0 when
// the path has no time directive.
func PathGranularity(path string) time.Duration {
	var g time.Duration
	finer := func(d time.Duration) {
		if g == 0 || d < g {
			g = d
		}
	}
	for i := 0; i+1 < len(path); i++ {
		if path[i] != '%' {
			continue
		}
		i++
		switch path[i] {
		case 'S', 's', 'T', 'L', 'N':
			finer(time.Second)
		case 'M', 'R':
			finer(time.Minute)
		case 'H', 'I', 'k', 'l':
			finer(time.Hour)
		case 'd', 'e', 'j', 'm', 'b', 'B', 'F', 'D', 'u', 'w', 'a', 'A', 'U', 'W', 'V':
			finer(24 * time.Hour)
		case 'Y', 'y', 'G', 'C':
			finer(24 * time.Hour)
		}
	}
	return g
}

// LeafOutputs returns every output that receives events itself: the
// top-level outputs other than copy, and the stores of each copy.
func (c *Config) LeafOutputs() []*Output {
	var out []*Output
	c.walkLeaves(func(_ string, o *Output) { out = append(out, o) })
	return out
}

// LeafOutputKeys returns the key path of each of LeafOutputs, in the same
// order: outputs[1], outputs[2].stores[0].
func (c *Config) LeafOutputKeys() []string {
	var keys []string
	c.walkLeaves(func(k string, _ *Output) { keys = append(keys, k) })
	return keys
}

func (c *Config) walkLeaves(fn func(key string, o *Output)) {
	var walk func(key string, o *Output)
	walk = func(key string, o *Output) {
		if o.Copy != nil {
			for i := range o.Copy.Stores {
				walk(fmt.Sprintf("%s.stores[%d]", key, i), &o.Copy.Stores[i])
			}
			return
		}
		fn(key, o)
	}
	for i := range c.Outputs {
		walk(fmt.Sprintf("outputs[%d]", i), &c.Outputs[i])
	}
}
