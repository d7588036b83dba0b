package config

import (
	"net/url"
	"regexp"
	"strings"
	"time"
)

// TreasureDataOutput imports events into Treasure Data with the import API
// td-agent's out_tdlog uses (fluentd's @type tdlog). Every fact about this
// output type is in this file: keys, defaults, validation.
//
// Each buffer chunk becomes one import per table (gzipped msgpack records,
// each with an integer "time", the event time in seconds) under an import
// id derived from the chunk id, so a chunk the buffer retries is imported
// once.
type TreasureDataOutput struct {
	OutputCommon `yaml:",inline"`
	// APIKey authenticates (Authorization: TD1 <apikey>); a write-only key
	// is enough. Required. Never logged.
	APIKey string `yaml:"apikey"`
	// Region picks the endpoints: us01 (default), ap01 (Tokyo), eu01,
	// ap02 (Korea).
	Region string `yaml:"region,omitempty"`
	// Endpoint is the import API (default: the region's api-import host)
	// and APIEndpoint the REST API that creates databases and tables
	// (default: the region's api host). A host name means https.
	Endpoint    string `yaml:"endpoint,omitempty"`
	APIEndpoint string `yaml:"api_endpoint,omitempty"`
	// Database and Table are templates rendered per event: ${tag},
	// ${tag_parts[N]}, ${key} (a record key; ${key:-default}). Rendered
	// values are normalized as td-client does (lower case, other
	// characters '_', 3 to 256 characters). Default (fluent-plugin-td
	// without database and table): the tag's last two parts.
	Database string `yaml:"database,omitempty"`
	Table    string `yaml:"table,omitempty"`
	// AutoCreateTable creates a missing database and table (log type) on
	// the first import that finds them missing. Default true (out_tdlog's).
	AutoCreateTable *bool `yaml:"auto_create_table,omitempty"`
	// Timeout bounds one HTTP request. Default 5m.
	Timeout Duration `yaml:"timeout,omitempty"`
	Buffer  Buffer   `yaml:"buffer,omitempty"`
}

// Treasure Data endpoints and defaults.
const (
	// TreasureDataImportLimit is out_tdlog's IMPORT_SIZE_LIMIT: the most
	// msgpack bytes one import carries; a larger table part of a chunk is
	// imported in several parts.
	TreasureDataImportLimit       = 32 << 20
	DefaultTreasureDataChunkLimit = 32 << 20
	DefaultTreasureDataTimeout    = 5 * time.Minute
)

// TreasureDataRegions maps a region to its import and API hosts.
var TreasureDataRegions = map[string][2]string{
	"us01": {"api-import.treasuredata.com", "api.treasuredata.com"},
	"ap01": {"api-import.treasuredata.co.jp", "api.treasuredata.co.jp"},
	"eu01": {"api-import.eu01.treasuredata.com", "api.eu01.treasuredata.com"},
	"ap02": {"api-import.ap02.treasuredata.com", "api.ap02.treasuredata.com"},
}

func (o *TreasureDataOutput) setDefaults(c *Config, name string) {
	if o.Region == "" {
		o.Region = "us01"
	}
	if hosts, ok := TreasureDataRegions[o.Region]; ok {
		if o.Endpoint == "" {
			o.Endpoint = "https://" + hosts[0]
		}
		if o.APIEndpoint == "" {
			o.APIEndpoint = "https://" + hosts[1]
		}
	}
	o.Endpoint, o.APIEndpoint = withScheme(o.Endpoint), withScheme(o.APIEndpoint)
	if o.Database == "" && o.Table == "" {
		o.Database, o.Table = "${tag_parts[-2]}", "${tag_parts[-1]}"
	}
	if o.AutoCreateTable == nil {
		t := true
		o.AutoCreateTable = &t
	}
	if o.Timeout == 0 {
		o.Timeout = Duration(DefaultTreasureDataTimeout)
	}
	o.Buffer.setDefaults(c, name, "", DefaultTreasureDataChunkLimit, DefaultFlushInterval)
}

// withScheme makes a bare host an https URL.
func withScheme(s string) string {
	if s == "" || strings.Contains(s, "://") {
		return s
	}
	return "https://" + strings.TrimSuffix(s, "/")
}

var tdName = regexp.MustCompile(`^[a-z0-9_]*$`)

func (o *TreasureDataOutput) validate(v *validator, p string) {
	if o.APIKey == "" {
		v.errorf(p+".apikey", "must be set (a Treasure Data API key; write-only is enough)")
	}
	if _, ok := TreasureDataRegions[o.Region]; !ok {
		v.errorf(p+".region", "%q is not one of us01, ap01, eu01, ap02 (or set endpoint and api_endpoint)", o.Region)
	}
	for _, e := range []struct{ key, val string }{{"endpoint", o.Endpoint}, {"api_endpoint", o.APIEndpoint}} {
		if u, err := url.Parse(e.val); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errorf(p+"."+e.key, "%q is not a host name or an http(s) URL", e.val)
		}
	}
	for _, n := range []struct{ key, tmpl string }{{"database", o.Database}, {"table", o.Table}} {
		switch lit := templateLiterals(n.tmpl); {
		case n.tmpl == "":
			v.errorf(p+"."+n.key, "must be set when %s is (a name, or a template such as event_${tag_parts[2]})", map[string]string{"database": "table", "table": "database"}[n.key])
		case !tdName.MatchString(lit):
			v.errorf(p+"."+n.key, "%q: Treasure Data names hold lower-case letters, digits and '_'", n.tmpl)
		case lit == n.tmpl && (len(lit) < 3 || len(lit) > 256):
			v.errorf(p+"."+n.key, "%q: Treasure Data names are 3 to 256 characters", n.tmpl)
		}
	}
	if o.Timeout < 0 {
		v.errorf(p+".timeout", "must not be negative")
	}
	v.buffer(p+".buffer", &o.Buffer, "")
}
