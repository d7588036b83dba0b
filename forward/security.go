package forward

import (
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/marutalog/maruta/internal/msgpack"
)

// The handshake of fluentd's <security> section, used when a shared key is
// configured. Right after the connection opens (and after TLS):
//
//	server → HELO ["HELO", {"nonce": bin, "auth": bin or "", "keepalive": bool}]
//	client → PING ["PING", client_hostname, shared_key_salt, shared_key_digest, username, password_digest]
//	server → PONG ["PONG", ok, reason, server_hostname, shared_key_digest]
//
// The PING digest is SharedKeyDigest(salt, client_hostname, nonce, key), the
// PONG digest SharedKeyDigest(salt, server_hostname, nonce, key) with the
// salt the client sent. "auth" is a salt for PasswordDigest when the server
// checks users, "" otherwise. After a PONG with ok false the server closes
// the connection; after ok true the Forward requests follow.

// SharedKeyDigest returns the lowercase hex SHA-512 of salt, hostname,
// nonce and sharedKey concatenated, as fluentd computes the PING and PONG
// digests.
func SharedKeyDigest(salt []byte, hostname string, nonce []byte, sharedKey string) string {
	h := sha512.New()
	h.Write(salt)
	h.Write([]byte(hostname))
	h.Write(nonce)
	h.Write([]byte(sharedKey))
	return hex.EncodeToString(h.Sum(nil))
}

// PasswordDigest returns the lowercase hex SHA-512 of authSalt, username and
// password concatenated, as fluentd computes PING's password digest.
func PasswordDigest(authSalt []byte, username, password string) string {
	h := sha512.New()
	h.Write(authSalt)
	h.Write([]byte(username))
	h.Write([]byte(password))
	return hex.EncodeToString(h.Sum(nil))
}

// digestEqual compares two hex digests in constant time.
func digestEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Helo is the server's first message.
type Helo struct {
	Nonce     []byte // random, 16 bytes from maruta
	Auth      []byte // salt for PasswordDigest; empty when users are not checked
	Keepalive bool
}

// Ping is the client's answer to HELO.
type Ping struct {
	Hostname        string // the client's self_hostname
	SharedKeySalt   []byte // chosen by the client
	SharedKeyDigest string // SharedKeyDigest(SharedKeySalt, Hostname, nonce, key)
	Username        string // "" without user auth
	PasswordDigest  string // PasswordDigest(auth, Username, password), or ""
}

// NewPing builds the PING a client with these credentials sends in answer
// to h. username and password are used only when h asks for them.
func NewPing(h Helo, hostname string, salt []byte, sharedKey, username, password string) Ping {
	p := Ping{
		Hostname:        hostname,
		SharedKeySalt:   salt,
		SharedKeyDigest: SharedKeyDigest(salt, hostname, h.Nonce, sharedKey),
	}
	if len(h.Auth) > 0 {
		p.Username = username
		p.PasswordDigest = PasswordDigest(h.Auth, username, password)
	}
	return p
}

// Pong is the server's verdict on a PING.
type Pong struct {
	OK              bool
	Reason          string // why authentication failed
	Hostname        string // the server's self_hostname
	SharedKeyDigest string // SharedKeyDigest(ping salt, Hostname, nonce, key)
}

// Verify checks a PONG received by a client that sent a PING with salt in
// answer to a HELO with nonce.
func (p Pong) Verify(salt, nonce []byte, sharedKey string) error {
	if !p.OK {
		return fmt.Errorf("authentication failed: %s", p.Reason)
	}
	if !digestEqual(p.SharedKeyDigest, SharedKeyDigest(salt, p.Hostname, nonce, sharedKey)) {
		return errors.New("server shared key mismatch")
	}
	return nil
}

// AppendHelo appends a HELO message.
func AppendHelo(dst []byte, h Helo) []byte {
	dst = msgpack.AppendArrayHeader(dst, 2)
	dst = msgpack.AppendString(dst, "HELO")
	dst = msgpack.AppendMapHeader(dst, 3)
	dst = msgpack.AppendString(dst, "nonce")
	dst = msgpack.AppendBin(dst, h.Nonce)
	dst = msgpack.AppendString(dst, "auth")
	if len(h.Auth) > 0 {
		dst = msgpack.AppendBin(dst, h.Auth)
	} else {
		dst = msgpack.AppendString(dst, "")
	}
	dst = msgpack.AppendString(dst, "keepalive")
	return msgpack.AppendBool(dst, h.Keepalive)
}

// AppendPing appends a PING message.
func AppendPing(dst []byte, p Ping) []byte {
	dst = msgpack.AppendArrayHeader(dst, 6)
	dst = msgpack.AppendString(dst, "PING")
	dst = msgpack.AppendString(dst, p.Hostname)
	dst = msgpack.AppendStringBytes(dst, p.SharedKeySalt)
	dst = msgpack.AppendString(dst, p.SharedKeyDigest)
	dst = msgpack.AppendString(dst, p.Username)
	return msgpack.AppendString(dst, p.PasswordDigest)
}

// AppendPong appends a PONG message.
func AppendPong(dst []byte, p Pong) []byte {
	dst = msgpack.AppendArrayHeader(dst, 5)
	dst = msgpack.AppendString(dst, "PONG")
	dst = msgpack.AppendBool(dst, p.OK)
	dst = msgpack.AppendString(dst, p.Reason)
	dst = msgpack.AppendString(dst, p.Hostname)
	return msgpack.AppendString(dst, p.SharedKeyDigest)
}

// AppendAck appends the reply {"ack": chunk} to a request whose chunk
// option was chunk, a raw msgpack value echoed byte for byte (Docker's
// client only accepts the str it sent).
func AppendAck(dst, chunk []byte) []byte {
	dst = msgpack.AppendMapHeader(dst, 1)
	dst = msgpack.AppendString(dst, "ack")
	return append(dst, chunk...)
}

// ParseAck reads an {"ack": chunk} reply at the start of b and returns the
// raw chunk value. Other keys are ignored.
func ParseAck(b []byte) (chunk []byte, err error) {
	v, found, err := msgpack.MapGet(b, "ack", 8)
	if err != nil {
		return nil, fmt.Errorf("read ack: %w", err)
	}
	if !found {
		return nil, errors.New("read ack: no ack key")
	}
	return v, nil
}

const handshakeDepth = 4

// readHandshake reads the array head of a handshake message and checks its
// name and element count.
func readHandshake(b []byte, name string, n int) ([]byte, error) {
	if _, err := msgpack.Skip(b, handshakeDepth); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	cnt, p, err := msgpack.ReadArrayHeader(b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	v, _, p, err := msgpack.ReadBytes(p)
	if err != nil || string(v) != name {
		return nil, fmt.Errorf("read %s: got a message that is not %s", name, name)
	}
	if cnt != n {
		return nil, fmt.Errorf("read %s: %d elements, want %d", name, cnt, n)
	}
	return p, nil
}

// readText reads a str or bin element.
func readText(b []byte, what string) ([]byte, []byte, error) {
	v, _, rest, err := msgpack.ReadBytes(b)
	if err != nil {
		return nil, b, fmt.Errorf("read %s: %w", what, err)
	}
	return v, rest, nil
}

// ParseHelo reads a HELO message at the start of b. A missing nonce or auth
// reads as empty, as fluentd's client does.
func ParseHelo(b []byte) (Helo, error) {
	p, err := readHandshake(b, "HELO", 2)
	if err != nil {
		return Helo{}, err
	}
	var h Helo
	if msgpack.Peek(p) == msgpack.Nil {
		return h, nil
	}
	err = msgpack.MapEach(p, handshakeDepth, func(k, v []byte) error {
		key, _, _, err := msgpack.ReadBytes(k)
		if err != nil {
			return nil
		}
		switch string(key) {
		case "nonce":
			h.Nonce, _, err = readText(v, "HELO nonce")
		case "auth":
			h.Auth, _, err = readText(v, "HELO auth")
		case "keepalive":
			h.Keepalive, _, err = msgpack.ReadBool(v)
		}
		return err
	})
	if err != nil {
		return Helo{}, fmt.Errorf("read HELO options: %w", err)
	}
	return h, nil
}

// ParsePing reads a PING message at the start of b.
func ParsePing(b []byte) (Ping, error) {
	p, err := readHandshake(b, "PING", 6)
	if err != nil {
		return Ping{}, err
	}
	var f [5][]byte
	names := [5]string{"hostname", "shared key salt", "shared key digest", "username", "password digest"}
	for i := range f {
		if f[i], p, err = readText(p, "PING "+names[i]); err != nil {
			return Ping{}, err
		}
	}
	return Ping{
		Hostname:        string(f[0]),
		SharedKeySalt:   f[1],
		SharedKeyDigest: string(f[2]),
		Username:        string(f[3]),
		PasswordDigest:  string(f[4]),
	}, nil
}

// ParsePong reads a PONG message at the start of b.
func ParsePong(b []byte) (Pong, error) {
	p, err := readHandshake(b, "PONG", 5)
	if err != nil {
		return Pong{}, err
	}
	var pong Pong
	if pong.OK, p, err = msgpack.ReadBool(p); err != nil {
		return Pong{}, fmt.Errorf("read PONG result: %w", err)
	}
	var f [3][]byte
	names := [3]string{"reason", "hostname", "shared key digest"}
	for i := range f {
		if f[i], p, err = readText(p, "PONG "+names[i]); err != nil {
			return Pong{}, err
		}
	}
	pong.Reason, pong.Hostname, pong.SharedKeyDigest = string(f[0]), string(f[1]), string(f[2])
	return pong, nil
}

// authenticator is the server side of the handshake.
type authenticator struct {
	hostname  string
	sharedKey string
	userAuth  bool
	users     map[string]string // username → password
}

// check verifies a PING against the HELO that was sent (nonce, auth salt)
// and returns the PONG to send.
func (a *authenticator) check(ping Ping, nonce, authSalt []byte) (Pong, bool) {
	if !digestEqual(ping.SharedKeyDigest, SharedKeyDigest(ping.SharedKeySalt, ping.Hostname, nonce, a.sharedKey)) {
		return Pong{Reason: "shared_key mismatch"}, false
	}
	if a.userAuth {
		pw, known := a.users[ping.Username]
		// Compare even for an unknown user so timing does not tell users apart.
		ok := digestEqual(ping.PasswordDigest, PasswordDigest(authSalt, ping.Username, pw))
		if !known || !ok {
			return Pong{Reason: "username/password mismatch"}, false
		}
	}
	return Pong{
		OK:              true,
		Hostname:        a.hostname,
		SharedKeyDigest: SharedKeyDigest(ping.SharedKeySalt, a.hostname, nonce, a.sharedKey),
	}, true
}
