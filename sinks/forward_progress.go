package sinks

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// fwdProgress is what earlier attempts of a chunk achieved.
type fwdProgress struct {
	acked     int        // leading parts acked
	tried     int        // parts sent at least once
	held      *fwdServer // part `acked` is in doubt on this server and waits for it
	heldSince time.Time
	holdFor   time.Duration
}

// progressFile is fwdProgress on disk.
type progressFile struct {
	MaxRequestSize int       `json:"max_request_size"`
	Acked          int       `json:"acked"`
	Tried          int       `json:"tried"`
	Held           string    `json:"held,omitempty"`
	HeldSince      time.Time `json:"held_since,omitzero"`
	// HoldFor in nanoseconds; absent in files of versions that held only
	// after ack timeouts (ack_timeout_hold then).
	HoldFor time.Duration `json:"hold_for,omitempty"`
}

// progressMap remembers the progress of chunks whose delivery failed part
// way or is held for a server, so that a retry skips the parts already
// acked and keeps a held part for its server. It keeps entries in memory
// (bounded: when full an arbitrary one is forgotten, and its chunk is then
// resent whole, which dedup on the server absorbs) and, when it has a
// folder, one small JSON file per entry, written without fsync (a lost
// file costs duplicates, not data), so a restarted agent resumes where the
// crashed one was. Files older than progressMaxAge are removed at start.
type progressMap struct {
	dir        string // "" : memory only
	maxRequest int
	servers    []*fwdServer
	log        *slog.Logger

	mu     sync.Mutex
	m      map[string]fwdProgress
	onDisk map[string]bool
}

const (
	maxProgress    = 10000
	progressMaxAge = 24 * time.Hour
)

var safeID = regexp.MustCompile(`^[0-9A-Za-z_-]{1,128}$`)

// init sets the folder (<data_dir>/forward/<output>) and removes stale
// files. Without a data_dir progress is kept in memory only.
func (p *progressMap) init(dataDir, output string, maxRequest int, servers []*fwdServer, log *slog.Logger) {
	p.maxRequest, p.servers, p.log = maxRequest, servers, log
	p.m, p.onDisk = map[string]fwdProgress{}, map[string]bool{}
	if dataDir == "" {
		return
	}
	dir := filepath.Join(dataDir, "forward", output)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Warn("cannot keep forward progress on disk; a restart resends partly delivered chunks whole", "dir", dir, "err", err)
		return
	}
	p.dir = dir
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			continue
		}
		if strings.HasSuffix(e.Name(), ".tmp") || time.Since(info.ModTime()) > progressMaxAge {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func (p *progressMap) file(id string) string {
	if p.dir == "" || !safeID.MatchString(id) {
		return ""
	}
	return filepath.Join(p.dir, id+".json")
}

func (p *progressMap) get(id string) fwdProgress {
	p.mu.Lock()
	pr, ok := p.m[id]
	p.mu.Unlock()
	if ok {
		return pr
	}
	path := p.file(id)
	if path == "" {
		return pr
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			p.log.Warn("read forward progress", "file", path, "err", err)
		}
		return pr
	}
	var pf progressFile
	if err := json.Unmarshal(b, &pf); err != nil || pf.MaxRequestSize != p.maxRequest {
		// Another split: the part numbers mean something else now.
		os.Remove(path)
		return pr
	}
	pr = fwdProgress{acked: pf.Acked, tried: pf.Tried, heldSince: pf.HeldSince, holdFor: pf.HoldFor}
	for _, s := range p.servers {
		if s.name == pf.Held && pf.Held != "" {
			pr.held = s
		}
	}
	p.mu.Lock()
	p.m[id] = pr
	p.onDisk[id] = true
	p.mu.Unlock()
	return pr
}

func (p *progressMap) set(id string, pr fwdProgress) {
	if pr.acked == 0 && pr.tried == 0 && pr.held == nil {
		return
	}
	p.mu.Lock()
	if _, ok := p.m[id]; !ok && len(p.m) >= maxProgress {
		for k := range p.m {
			delete(p.m, k) // its file, if any, stays and is read again
			delete(p.onDisk, k)
			break
		}
	}
	p.m[id] = pr
	path := p.file(id)
	// Only what saves a resend goes to disk: acked parts and a hold (not
	// every failed attempt while all servers are down).
	persist := path != "" && (pr.acked > 0 || pr.held != nil)
	wasOnDisk := p.onDisk[id]
	if persist {
		p.onDisk[id] = true
	} else {
		delete(p.onDisk, id)
	}
	p.mu.Unlock()
	if !persist {
		if wasOnDisk {
			os.Remove(path)
		}
		return
	}
	pf := progressFile{MaxRequestSize: p.maxRequest, Acked: pr.acked, Tried: pr.tried, HeldSince: pr.heldSince, HoldFor: pr.holdFor}
	if pr.held != nil {
		pf.Held = pr.held.name
	}
	b, _ := json.Marshal(pf)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		err = os.Rename(tmp, path)
		if err != nil {
			p.log.Warn("write forward progress", "file", path, "err", err)
		}
	}
}

func (p *progressMap) forget(id string) {
	p.mu.Lock()
	delete(p.m, id)
	disk := p.onDisk[id]
	delete(p.onDisk, id)
	p.mu.Unlock()
	if disk {
		if path := p.file(id); path != "" {
			os.Remove(path)
		}
	}
}
