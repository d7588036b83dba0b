package forward

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/marutalog/maruta/internal/config"
)

// ClientTLSConfig builds a client's TLS configuration from a tls section:
// the server certificate is verified against CAFile (the system roots when
// empty) and ServerName (default: the host dialed), a client certificate is
// presented when CertFile and KeyFile are set, and InsecureSkipVerify turns
// verification off (tests only). The minimum version is TLS 1.2.
func ClientTLSConfig(t *config.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pool, err := loadCAPool(t.CAFile)
		if err != nil {
			return nil, config.AtKey("ca_file", err)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, config.AtKey("cert_file", fmt.Errorf("load TLS client certificate: %w", err))
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// loadCAPool reads the PEM certificates of a tls section's ca_file: the
// roots a client verifies servers with, and the CAs a server verifies
// client certificates with.
func loadCAPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read TLS CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read TLS CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}
