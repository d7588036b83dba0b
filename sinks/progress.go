package sinks

import (
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// eventProgress remembers how far earlier attempts delivered a chunk to a
// destination that cannot recognise a resend (CloudWatch Logs has no
// idempotency key): per chunk, per stream, how many of the stream's
// events (in the sink's deterministic order) were accepted. A retry of the
// chunk skips them. Entries live in memory and, when there is a data_dir,
// in one small JSON file per chunk under <data_dir>/progress/<output>/,
// written without fsync (a lost file costs duplicates, not data), so a
// restarted maruta resumes where the last one stopped. sig names the
// settings that decide the order and split of events; a file written
// under other settings is ignored. Files older than progressMaxAge are
// removed at start. Safe for concurrent use.
type eventProgress struct {
	dir string // "": memory only
	sig string
	log *slog.Logger

	mu sync.Mutex
	m  map[string]map[string]int
}

type eventProgressFile struct {
	Sig  string         `json:"sig"`
	Done map[string]int `json:"done"`
}

func newEventProgress(dataDir, output, sig string, log *slog.Logger) *eventProgress {
	p := &eventProgress{sig: sig, log: log, m: map[string]map[string]int{}}
	if dataDir == "" {
		return p
	}
	dir := filepath.Join(dataDir, "progress", output)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Warn("cannot keep delivery progress on disk; a restart resends partly delivered chunks whole", "dir", dir, "err", err)
		return p
	}
	p.dir = dir
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if info, err := e.Info(); err == nil && (strings.HasSuffix(e.Name(), ".tmp") || time.Since(info.ModTime()) > progressMaxAge) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return p
}

func (p *eventProgress) file(id string) string {
	if p.dir == "" || !safeID.MatchString(id) {
		return ""
	}
	return filepath.Join(p.dir, id+".json")
}

// get returns a copy of what earlier attempts of chunk id delivered.
func (p *eventProgress) get(id string) map[string]int {
	p.mu.Lock()
	done, ok := p.m[id]
	p.mu.Unlock()
	if ok {
		return maps.Clone(done)
	}
	done = map[string]int{}
	path := p.file(id)
	if path == "" {
		return done
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			p.log.Warn("read delivery progress", "file", path, "err", err)
		}
		return done
	}
	var f eventProgressFile
	if json.Unmarshal(b, &f) != nil || f.Sig != p.sig || f.Done == nil {
		os.Remove(path)
		return done
	}
	return f.Done
}

// set records what chunk id has delivered so far.
func (p *eventProgress) set(id string, done map[string]int) {
	p.mu.Lock()
	if _, ok := p.m[id]; !ok && len(p.m) >= maxProgress {
		for k := range p.m {
			delete(p.m, k) // its file stays and is read again
			break
		}
	}
	p.m[id] = maps.Clone(done)
	p.mu.Unlock()
	path := p.file(id)
	if path == "" {
		return
	}
	b, _ := json.Marshal(eventProgressFile{Sig: p.sig, Done: done})
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, b, 0o644)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		p.log.Warn("write delivery progress", "file", path, "err", err)
	}
}

// forget drops a chunk that was delivered or given up.
func (p *eventProgress) forget(id string) {
	p.mu.Lock()
	delete(p.m, id)
	p.mu.Unlock()
	if path := p.file(id); path != "" {
		os.Remove(path)
	}
}
