package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Server is a versitygw S3 gateway on 127.0.0.1 serving a temporary
// folder (posix backend). It is stopped when the test ends.
type S3Server struct {
	// Endpoint is the server's URL, e.g. http://127.0.0.1:40123.
	Endpoint  string
	AccessKey string
	SecretKey string
	// Region is the region the server signs for.
	Region string
	// Dir is the served folder: bucket b, key k is the file Dir/b/k.
	Dir string

	bin  string
	addr string
	log  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// S3Option changes how StartS3 starts the server.
type S3Option func(*S3Server)

// WithRegion makes the server expect request signatures for region (the
// default is us-east-1).
func WithRegion(region string) S3Option { return func(s *S3Server) { s.Region = region } }

// StartS3 starts versitygw (MARUTA_VERSITYGW) on a free loopback port, or
// skips the test when it is not installed.
func StartS3(t testing.TB, opts ...S3Option) *S3Server {
	t.Helper()
	bin := Tool(t, "MARUTA_VERSITYGW")
	s := &S3Server{
		AccessKey: "maruta-test-key",
		SecretKey: "maruta-test-secret",
		Region:    "us-east-1",
		Dir:       t.TempDir(),
		bin:       bin,
		log:       filepath.Join(t.TempDir(), "versitygw.log"),
	}
	for _, o := range opts {
		o(s)
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.addr, err = freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.Endpoint = "http://" + s.addr
		if err = s.Start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Start (re)starts the server on its address and waits until it answers.
// After Stop, it brings the same server back with the same data.
func (s *S3Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("versitygw is running")
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "--port", s.addr, "--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region, "--quiet", "posix", s.Dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			s.cmd = nil
			out, _ := os.ReadFile(s.log)
			return fmt.Errorf("versitygw exited: %s", out)
		default:
		}
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stopLocked()
	return errors.New("versitygw did not answer within 15s")
}

// Stop stops the server (data stays in Dir). Stopping twice is fine.
func (s *S3Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *S3Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Client returns an S3 client for the server (path style, static keys).
func (s *S3Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket creates a bucket through the S3 API.
func (s *S3Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// Object is an object listed by Objects.
type Object struct {
	Key  string
	Size int64
}

// Objects lists every object of a bucket under prefix.
func (s *S3Server) Objects(t testing.TB, bucket, prefix string) []Object {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []Object
	p := s3.NewListObjectsV2Paginator(s.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			out = append(out, Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)})
		}
	}
	return out
}

// Download copies every object of a bucket under prefix into dir (same
// relative keys), e.g. for DuckDB to read, and returns the local paths.
func (s *S3Server) Download(t testing.TB, bucket, prefix, dir string) []string {
	t.Helper()
	var paths []string
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, o := range s.Objects(t, bucket, prefix) {
		resp, err := s.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.Key)})
		if err != nil {
			t.Fatalf("get %s: %v", o.Key, err)
		}
		p := filepath.Join(dir, filepath.FromSlash(o.Key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		n, err := f.ReadFrom(resp.Body)
		resp.Body.Close()
		f.Close()
		if err != nil || n != o.Size {
			t.Fatalf("get %s: %d of %d bytes: %v", o.Key, n, o.Size, err)
		}
		paths = append(paths, p)
	}
	return paths
}

// PutObject writes an object (for tests that need one to exist).
func (s *S3Server) PutObject(t testing.TB, bucket, key string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytesReader(body), ContentLength: aws.Int64(int64(len(body)))})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
