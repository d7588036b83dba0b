package config

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// Validate checks the whole config and returns every problem it finds as
// Errors, each naming the file, line and key. It checks structure and values
// that need no component; components report what only they can check (a tag
// pattern, a regular expression) through Errorf when they are built.
func (c *Config) Validate() error {
	v := &validator{c: c, names: map[string]string{}}
	oneOf(v, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(v, "log.format", c.Log.Format, "text", "json")
	if c.HTTP.Listen != "off" {
		v.hostPort("http.listen", c.HTTP.Listen)
	}
	if c.HTTP.ReadyHighWater < 1 || c.HTTP.ReadyHighWater > 100 {
		v.errorf("http.ready_high_water", "must be a percentage from 1 to 100")
	}
	if !nodeName.MatchString(c.Node) {
		v.errorf("node", "%q may hold only letters, digits, '.', '_' and '-'", c.Node)
	}
	if len(c.Sources) == 0 {
		v.errorf("sources", "at least one source is needed")
	}
	for i := range c.Sources {
		v.source(fmt.Sprintf("sources[%d]", i), &c.Sources[i])
	}
	for i := range c.Pipeline {
		v.step(fmt.Sprintf("pipeline[%d]", i), &c.Pipeline[i])
	}
	if len(c.Outputs) == 0 {
		v.errorf("outputs", "at least one output is needed")
	}
	for i := range c.Outputs {
		v.output(fmt.Sprintf("outputs[%d]", i), &c.Outputs[i], false)
	}
	if len(v.errs) > 0 {
		return v.errs
	}
	return nil
}

var nodeName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

type validator struct {
	c     *Config
	errs  Errors
	names map[string]string // output name → the key path that has it
}

func (v *validator) errorf(path, format string, args ...any) {
	v.errs = append(v.errs, v.c.Errorf(path, format, args...))
}

func oneOf[T ~string](v *validator, path string, val T, allowed ...T) {
	if !slices.Contains(allowed, val) {
		words := make([]string, len(allowed))
		for i, a := range allowed {
			words[i] = string(a)
		}
		v.errorf(path, "%q is not one of %s", val, strings.Join(words, ", "))
	}
}

func (v *validator) hostPort(path, addr string) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		v.errorf(path, "%q is not host:port", addr)
	}
}

func (v *validator) source(p string, s *Source) {
	oneOf(v, p+".type", s.Type, "forward")
	if strings.HasPrefix(s.Listen, "unix://") {
		if strings.TrimPrefix(s.Listen, "unix://") == "" {
			v.errorf(p+".listen", "unix:// needs a socket path")
		}
	} else {
		v.hostPort(p+".listen", s.Listen)
	}
	if s.TLS != nil {
		v.tls(p+".tls", s.TLS, true)
	}
	if sec := s.Security; sec != nil {
		if sec.SharedKey == "" {
			v.errorf(p+".security.shared_key", "must be set when security is configured")
		}
		if sec.UserAuth && len(sec.Users) == 0 {
			v.errorf(p+".security.users", "user_auth needs at least one user")
		}
		for j, u := range sec.Users {
			if u.Username == "" {
				v.errorf(fmt.Sprintf("%s.security.users[%d].username", p, j), "must be set")
			}
		}
	}
	if s.ChunkSizeLimit < 1024 {
		v.errorf(p+".chunk_size_limit", "must be at least 1KiB")
	}
	if s.MaxDecompressedSize < s.ChunkSizeLimit {
		v.errorf(p+".max_decompressed_size", "must be at least chunk_size_limit (%s)", FormatSize(int64(s.ChunkSizeLimit)))
	}
	if s.MaxDepth < 4 {
		v.errorf(p+".max_depth", "must be at least 4")
	}
	if s.MaxConnections < 1 {
		v.errorf(p+".max_connections", "must be at least 1")
	}
}

func (v *validator) tls(p string, t *TLS, server bool) {
	if server {
		if t.CertFile == "" || t.KeyFile == "" {
			v.errorf(p, "cert_file and key_file must both be set")
		}
		if t.ClientAuth != "" {
			oneOf(v, p+".client_auth", t.ClientAuth, ClientAuthNone, ClientAuthRequest, ClientAuthRequire)
		}
		if (t.ClientAuth == ClientAuthRequest || t.ClientAuth == ClientAuthRequire) && t.CAFile == "" {
			v.errorf(p+".ca_file", "needed to verify client certificates")
		}
	} else if (t.CertFile == "") != (t.KeyFile == "") {
		v.errorf(p, "cert_file and key_file must be set together")
	}
}

func (v *validator) step(p string, s *Step) {
	if b := s.body(); b != nil {
		b.validate(v, p)
	}
}

func (x *ParseStep) validate(v *validator, p string) {
	if x.Key == "" {
		v.errorf(p+".key", "must be set (the field to parse, e.g. log)")
	}
	oneOf(v, p+".format", x.Format, "json", "regexp")
	if x.Format == "regexp" && x.Expression == "" {
		v.errorf(p+".expression", "format regexp needs an expression with named groups")
	}
	if x.TimeType != "" {
		oneOf(v, p+".time_type", x.TimeType, "string", "unixtime", "float", "auto")
		if x.TimeType == "auto" && x.TimeFormat != "" {
			v.errorf(p+".time_format", "time_type auto reads RFC 3339 / ISO 8601 strings and epoch numbers: no time_format")
		}
	}
	if len(x.ProtectKeys) > 0 && !x.ReserveData {
		v.errorf(p+".protect_keys", "needs reserve_data: true (without it the parsed fields replace the whole record)")
	}
	for j, k := range x.ProtectKeys {
		if k == "" {
			v.errorf(fmt.Sprintf("%s.protect_keys[%d]", p, j), "must not be empty")
		}
	}
	if x.CollisionPrefix != "" && len(x.ProtectKeys) == 0 {
		v.errorf(p+".collision_prefix", "applies only with protect_keys")
	}
}

func (x *RewriteTagStep) validate(v *validator, p string) {
	if len(x.Rules) == 0 {
		v.errorf(p+".rules", "at least one rule is needed")
	}
	for j, r := range x.Rules {
		rp := fmt.Sprintf("%s.rules[%d]", p, j)
		if r.Key == "" {
			v.errorf(rp+".key", "must be set")
		}
		if r.Pattern == "" {
			v.errorf(rp+".pattern", "must be set")
		}
		if r.Tag == "" {
			v.errorf(rp+".tag", "must be set")
		}
	}
	oneOf(v, p+".unmatched", x.Unmatched, UnmatchedKeep, UnmatchedDrop)
	if x.MaxHops < 1 {
		v.errorf(p+".max_hops", "must be at least 1")
	}
}

func (x *ConcatPartialsStep) validate(v *validator, p string) {
	if x.MaxSize < 16<<10 {
		v.errorf(p+".max_size", "must be at least 16KiB (one Docker partial)")
	}
}

func (x *RecordStep) validate(v *validator, p string) {
	if len(x.Set)+len(x.Remove)+len(x.Rename) == 0 {
		v.errorf(p, "record step needs set, remove or rename")
	}
	for j, kv := range x.Set {
		if kv.Key == "" {
			v.errorf(fmt.Sprintf("%s.set[%d].key", p, j), "must be set")
		}
	}
	for j, kv := range x.Rename {
		if kv.Key == "" || kv.Value == "" {
			v.errorf(fmt.Sprintf("%s.rename[%d]", p, j), "rename needs key (old name) and value (new name)")
		}
	}
}

func (x *GrepStep) validate(v *validator, p string) {
	if len(x.Regexp)+len(x.Exclude) == 0 {
		v.errorf(p, "grep step needs regexp or exclude rules")
	}
	for j, r := range append(append([]GrepRule{}, x.Regexp...), x.Exclude...) {
		if r.Key == "" || r.Pattern == "" {
			v.errorf(fmt.Sprintf("%s.rules[%d]", p, j), "grep rules need key and pattern")
		}
	}
}

func (v *validator) output(p string, o *Output, store bool) {
	if !nameRE.MatchString(o.Name) {
		v.errorf(p+".name", "%q may hold only letters, digits, '_' and '-'", o.Name)
	}
	if o.Copy == nil {
		if prev, dup := v.names[o.Name]; dup {
			v.errorf(p+".name", "%q is already the name of %s", o.Name, prev)
		}
		v.names[o.Name] = p
	}
	if store && o.Match != "" {
		v.errorf(p+".match", "a copy store takes every event of its copy; match is not allowed here")
	}
	if store && o.Copy != nil {
		v.errorf(p+".type", "a copy cannot be a store of another copy")
	}
	if b := o.body(); b != nil {
		b.validate(v, p)
	}
}

func (f *FileOutput) validate(v *validator, p string) {
	v.encoding(p, &f.Encoding)
	v.path(p, f.Path)
	v.buffer(p+".buffer", &f.Buffer, f.Path)
}

func (s *S3Output) validate(v *validator, p string) {
	if s.Bucket == "" {
		v.errorf(p+".bucket", "must be set")
	}
	if strings.HasPrefix(s.Path, "/") {
		v.errorf(p+".path", "an S3 key prefix must not start with '/'")
	}
	if s.ServerSideEncryption != "" {
		oneOf(v, p+".server_side_encryption", s.ServerSideEncryption, "AES256", "aws:kms")
	}
	if s.SSEKMSKeyID != "" && s.ServerSideEncryption != "aws:kms" {
		v.errorf(p+".sse_kms_key_id", "needs server_side_encryption: aws:kms")
	}
	if s.PartSize < 5<<20 {
		v.errorf(p+".part_size", "S3 parts must be at least 5MiB")
	}
	if (s.AccessKeyID == "") != (s.SecretAccessKey == "") {
		v.errorf(p+".access_key_id", "access_key_id and secret_access_key must be set together")
	}
	v.encoding(p, &s.Encoding)
	v.path(p, s.Path)
	v.buffer(p+".buffer", &s.Buffer, s.Path)
}

func (f *ForwardOutput) validate(v *validator, p string) {
	if len(f.Servers) == 0 {
		v.errorf(p+".servers", "at least one server is needed")
	}
	active := 0
	seen := map[string]bool{}
	for j, sv := range f.Servers {
		sp := fmt.Sprintf("%s.servers[%d]", p, j)
		if seen[sv.Name] {
			v.errorf(sp+".name", "%q names another server too: server names must be unique", sv.Name)
		}
		seen[sv.Name] = true
		if sv.Host == "" {
			v.errorf(sp+".host", "must be set")
		}
		if sv.Port < 1 || sv.Port > 65535 {
			v.errorf(sp+".port", "%d is not a port", sv.Port)
		}
		if sv.Weight < 0 {
			v.errorf(sp+".weight", "must not be negative")
		}
		if !sv.Standby {
			active++
		}
	}
	if len(f.Servers) > 0 && active == 0 {
		v.errorf(p+".servers", "every server is a standby; at least one must be active")
	}
	oneOf(v, p+".compress", f.Compress, CompressText, CompressGzip)
	oneOf(v, p+".heartbeat_type", f.HeartbeatType, HeartbeatTransport, HeartbeatTCP, HeartbeatUDP, HeartbeatNone)
	if f.TLS != nil {
		v.tls(p+".tls", f.TLS, false)
	}
	if f.Security != nil && f.Security.SharedKey == "" {
		v.errorf(p+".security.shared_key", "must be set when security is configured")
	}
	for _, d := range []struct {
		key string
		val Duration
	}{
		{"ack_response_timeout", f.AckResponseTimeout}, {"heartbeat_interval", f.HeartbeatInterval},
		{"connect_timeout", f.ConnectTimeout}, {"send_timeout", f.SendTimeout}, {"keepalive_timeout", f.KeepaliveTimeout},
	} {
		if d.val < 0 {
			v.errorf(p+"."+d.key, "must not be negative")
		}
	}
	for _, d := range []struct {
		key string
		val *Duration
	}{{"ack_timeout_hold", f.AckTimeoutHold}, {"lost_ack_hold", f.LostAckHold}} {
		if d.val != nil && *d.val < 0 {
			v.errorf(p+"."+d.key, "must not be negative")
		}
	}
	if f.MaxRequestSize < 1024 {
		v.errorf(p+".max_request_size", "must be at least 1KiB")
	}
	v.buffer(p+".buffer", &f.Buffer, "")
}

func (o *CopyOutput) validate(v *validator, p string) {
	if len(o.Stores) == 0 {
		v.errorf(p+".stores", "copy needs at least one store")
	}
	for j := range o.Stores {
		v.output(fmt.Sprintf("%s.stores[%d]", p, j), &o.Stores[j], true)
	}
}

func (v *validator) encoding(p string, e *Encoding) {
	oneOf(v, p+".format", e.Format, FormatParquet, FormatJSONL)
	switch e.Format {
	case FormatParquet:
		oneOf(v, p+".compression", e.Compression, CompressionZstd, CompressionSnappy, CompressionGzip, CompressionNone)
	case FormatJSONL:
		oneOf(v, p+".compression", e.Compression, CompressionGzip, CompressionNone)
		if e.Schema != nil {
			v.errorf(p+".schema", "schema applies to format parquet only")
		}
		if e.SortBy != nil || e.SortByTime {
			v.errorf(p+".sort_by", "sorting applies to format parquet only")
		}
	}
	if e.Athena != nil {
		v.athena(p, e.Athena)
	}
	if e.SortByTime && !slices.Equal(e.SortBy, []string{"time"}) {
		v.errorf(p+".sort_by_time", "is sort_by: [time]; give sort_by alone")
	}
	for j, k := range e.SortBy {
		if k == "" || slices.Contains(e.SortBy[:j], k) || k == "time" && j != len(e.SortBy)-1 {
			v.errorf(fmt.Sprintf("%s.sort_by[%d]", p, j), "%q: record keys, each once, then optionally time", k)
		}
	}
	if e.RowGroupRows < 1 {
		v.errorf(p+".row_group_rows", "must be at least 1")
	}
	if s := e.Schema; s != nil {
		oneOf(v, p+".schema.mode", s.Mode, SchemaAuto, SchemaDeclared)
		if s.MaxColumns < 1 {
			v.errorf(p+".schema.max_columns", "must be at least 1")
		}
		if !columnName.MatchString(s.OverflowColumn) {
			v.errorf(p+".schema.overflow_column", "%q may hold only lower-case letters, digits and '_'", s.OverflowColumn)
		}
		if s.Mode == SchemaDeclared && len(s.Columns) == 0 {
			v.errorf(p+".schema.columns", "declared mode needs columns")
		}
		seen := map[string]bool{}
		for j, col := range s.Columns {
			cp := fmt.Sprintf("%s.schema.columns[%d]", p, j)
			if col.Name == "" {
				v.errorf(cp+".name", "must be set")
			}
			if seen[strings.ToLower(col.Name)] {
				v.errorf(cp+".name", "column %q is declared twice (Athena column names ignore case)", col.Name)
			}
			seen[strings.ToLower(col.Name)] = true
			oneOf(v, cp+".type", col.Type, "string", "bigint", "int", "double", "boolean", "timestamp", "map<string,string>", "json")
		}
	}
}

var columnName = regexp.MustCompile(`^[a-z0-9_]+$`)

func (v *validator) athena(p string, a *Athena) {
	seen := map[string]bool{}
	for j, pt := range a.Partitions {
		pp := fmt.Sprintf("%s.athena.partitions[%d]", p, j)
		if pt.Placeholder == "" {
			v.errorf(pp+".placeholder", "must be set (tag, tag_parts[N] or a chunk key)")
		}
		if pt.Name != "" && !columnName.MatchString(pt.Name) {
			v.errorf(pp+".name", "%q may hold only lower-case letters, digits and '_'", pt.Name)
		}
		if seen[pt.Placeholder] {
			v.errorf(pp+".placeholder", "%q is listed twice", pt.Placeholder)
		}
		seen[pt.Placeholder] = true
	}
	if a.Location != "" && !strings.HasPrefix(a.Location, "s3://") && !strings.HasPrefix(a.Location, "file://") {
		v.errorf(p+".athena.location", "%q must be an s3:// (or file://) URI", a.Location)
	}
}

// path checks an object output's path template. What its placeholders
// and object_key must be (object_key must contain ${chunk_id}) the sink
// checks when it is built, which validate does (sinks/layout.NewKeys).
func (v *validator) path(p, path string) {
	if strings.Contains(path, "..") {
		v.errorf(p+".path", "must not contain '..'")
	}
}

func (v *validator) buffer(p string, b *Buffer, path string) {
	oneOf(v, p+".fsync", b.Fsync, FsyncAlways, FsyncInterval, FsyncOff)
	oneOf(v, p+".overflow_action", b.OverflowAction, OverflowBlock, OverflowDropOldest, OverflowThrow)
	if b.ChunkLimitSize < 1024 {
		v.errorf(p+".chunk_limit_size", "must be at least 1KiB")
	}
	if b.TotalLimitSize < b.ChunkLimitSize {
		v.errorf(p+".total_limit_size", "must be at least chunk_limit_size (%s)", FormatSize(int64(b.ChunkLimitSize)))
	}
	if b.FlushThreadCount < 1 {
		v.errorf(p+".flush_thread_count", "must be at least 1")
	}
	if b.MaxOpenChunks < 1 {
		v.errorf(p+".max_open_chunks", "must be at least 1")
	}
	if b.RetryMaxInterval < b.RetryWait {
		v.errorf(p+".retry_max_interval", "must be at least retry_wait (%s)", b.RetryWait)
	}
	if b.RetryMaxTimes < 0 {
		v.errorf(p+".retry_max_times", "must not be negative")
	}
	if b.Timekey > 0 {
		tk := b.Timekey.D()
		if tk < time.Second || tk%time.Second != 0 {
			v.errorf(p+".timekey", "must be a whole number of seconds")
		} else if (24*time.Hour)%tk != 0 && tk%(24*time.Hour) != 0 {
			v.errorf(p+".timekey", "%s does not divide a day evenly", FormatDuration(tk))
		}
		if g := PathGranularity(path); g > 0 && (tk > g || g%tk != 0) {
			v.errorf(p+".timekey", "%s is coarser than the path's finest time unit (%s): a chunk would span two partitions", FormatDuration(tk), FormatDuration(g))
		}
	}
}

// templateLiterals returns a template without its ${...} placeholders: the
// text every rendering contains.
func templateLiterals(tmpl string) string {
	var b strings.Builder
	for {
		i := strings.Index(tmpl, "${")
		if i < 0 {
			break
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			break
		}
		b.WriteString(tmpl[:i])
		tmpl = tmpl[i+j+1:]
	}
	b.WriteString(tmpl)
	return b.String()
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
