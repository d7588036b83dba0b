package forward

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marutalog/maruta/internal/config"
)

// A client and a server read their ca_file the same way, and refuse a
// missing file and a file without a PEM certificate alike.
func TestCAFileClientAndServer(t *testing.T) {
	dir, _, _ := writeCerts(t)
	notPEM := filepath.Join(dir, "not-pem.crt")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644)
	for _, c := range []struct{ file, want string }{
		{filepath.Join(dir, "ca.crt"), ""},
		{filepath.Join(dir, "missing.crt"), "read TLS CA file: "},
		{notPEM, "no PEM certificate in it"},
	} {
		cc, cerr := ClientTLSConfig(&config.TLS{CAFile: c.file})
		sc, serr := serverTLS(&config.TLS{CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key"), CAFile: c.file})
		if c.want == "" {
			if cerr != nil || serr != nil || cc.RootCAs == nil || sc.ClientCAs == nil {
				t.Errorf("%s: client %v, server %v", c.file, cerr, serr)
			}
			continue
		}
		for who, err := range map[string]error{"client": cerr, "server": serr} {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s %s: %v, want %q", who, filepath.Base(c.file), err, c.want)
			}
		}
	}
}
