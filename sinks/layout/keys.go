package layout

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
)

// Keys renders the object keys (or file paths) of an output's chunks from
// its path and object_key templates. Read-only once made: safe for
// concurrent use.
type Keys struct {
	path      string // the output's path template, for chunks without Path
	objectKey template
	node      string
}

// NewKeys checks an output's templates: every placeholder must be known
// (${tag}, ${tag_parts[N]}, the buffer's chunk_keys, and in object_key also
// ${path}, ${node}, ${hostname}, ${chunk_id}, ${ext}), and object_key must
// contain ${chunk_id}, so that a chunk always gets its own key. node names
// this maruta in keys.
func NewKeys(path, objectKey, node string, chunkKeys []string) (*Keys, error) {
	known := map[string]bool{}
	for _, k := range chunkKeys {
		known[k] = true
	}
	check := func(what string, t template, extra ...string) error {
		for _, tk := range t {
			if tk.kind != tokName || known[tk.name] {
				continue
			}
			ok := false
			for _, e := range extra {
				ok = ok || tk.name == e
			}
			if !ok {
				known := "${tag}, ${tag_parts[N]}"
				for _, e := range extra {
					known += ", ${" + e + "}"
				}
				return config.AtKey(what, fmt.Errorf("unknown placeholder %s (known: %s and the buffer's chunk_keys)", tk.text, known))
			}
		}
		return nil
	}
	if err := check("path", parseTemplate(path)); err != nil {
		return nil, err
	}
	ot := parseTemplate(objectKey)
	if err := check("object_key", ot, "path", "node", "hostname", "chunk_id", "ext"); err != nil {
		return nil, err
	}
	has := false
	for _, tk := range ot {
		has = has || tk.kind == tokName && tk.name == "chunk_id"
	}
	if !has {
		return nil, config.AtKey("object_key", fmt.Errorf("%q must contain ${chunk_id}: it makes keys deterministic, so a retry never writes a second object", objectKey))
	}
	return &Keys{path: path, objectKey: ot, node: SanitizeValue(node)}, nil
}

// Render returns the object key of a chunk, with ext for ${ext}: the same
// chunk always gets the same key. Path and object key are rendered with the
// chunk's time slice (or, without one, its creation time) in UTC.
func (k *Keys) Render(info delivery.ChunkInfo, ext string) (string, error) {
	t := info.Slice
	if t.IsZero() {
		t = info.Created
	}
	t = t.UTC()
	v := &renderVars{t: t, tag: info.Tag, keys: info.Keys, strict: true}
	pt := info.Path
	if pt == "" {
		pt = k.path
	}
	path, err := parseTemplate(pt).render(v)
	if err != nil {
		return "", err
	}
	v.vars = map[string]string{
		"path": path, "node": k.node, "hostname": k.node, "chunk_id": SanitizeValue(info.ID), "ext": ext,
	}
	return k.objectKey.render(v)
}

// Root returns the folder every rendered key lies under: the object key's
// literal start (with ${path} read as the path template's literal start),
// cut after its last slash. It is "" when the key starts with a placeholder
// or a strftime directive, "/" when only the root is fixed.
func (k *Keys) Root() string {
	var prefix strings.Builder
	lit := func(t template) bool {
		for _, tk := range t {
			if tk.kind != tokLit {
				return false
			}
			prefix.WriteString(tk.text)
		}
		return true
	}
	for _, tk := range k.objectKey {
		if tk.kind == tokName && tk.name == "path" {
			if !lit(parseTemplate(k.path)) {
				break
			}
			continue
		}
		if !lit(template{tk}) {
			break
		}
	}
	p := prefix.String()
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	if i == 0 {
		return "/"
	}
	return filepath.Clean(p[:i])
}

// Node is the node name as it appears in keys (sanitized).
func (k *Keys) Node() string { return k.node }
