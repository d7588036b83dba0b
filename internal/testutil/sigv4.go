package testutil

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

var authRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)

// checkSigV4 verifies the SigV4 signature of r (body already read) as an
// AWS endpoint of service in region with one key pair: the Authorization
// header is parsed and the signature recomputed over the signed headers.
// It returns what is wrong, or "".
func checkSigV4(r *http.Request, body []byte, accessKey, secretKey, region, service string) string {
	m := authRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return "Authorization is not a SigV4 header: " + r.Header.Get("Authorization")
	}
	if m[1] != accessKey || m[3] != region || m[4] != service {
		return fmt.Sprintf("credential scope %s/%s/%s, want %s/%s/%s", m[1], m[3], m[4], accessKey, region, service)
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || at.Format("20060102") != m[2] {
		return "X-Amz-Date missing or not the credential's date"
	}
	req, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	for _, h := range strings.Split(m[5], ";") {
		if h != "host" && h != "content-length" {
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	req.Header.Del("Authorization")
	sum := sha256.Sum256(body)
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey},
		req, hex.EncodeToString(sum[:]), service, region, at)
	if err != nil {
		return err.Error()
	}
	if got := authRE.FindStringSubmatch(req.Header.Get("Authorization")); got == nil || got[6] != m[6] {
		return "signature does not match"
	}
	return ""
}

// readJSON11 reads a request of AWS's JSON 1.1 protocol: POST / with
// X-Amz-Target PREFIX.Operation and Content-Type application/x-amz-json-1.1.
// It returns the operation and the body, or answers with fail (each
// service spells its error bodies its own way) and returns ok false.
func readJSON11(w http.ResponseWriter, r *http.Request, prefix string, fail func(http.ResponseWriter, int, string, string)) (op string, body []byte, ok bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return "", nil, false
	}
	op, ok = strings.CutPrefix(r.Header.Get("X-Amz-Target"), prefix)
	if r.Method != http.MethodPost || r.URL.Path != "/" || !ok {
		fail(w, http.StatusBadRequest, "UnknownOperationException", "")
		return "", nil, false
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		fail(w, http.StatusBadRequest, "SerializationException", "Content-Type "+ct)
		return "", nil, false
	}
	return op, body, true
}
