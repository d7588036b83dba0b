package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
)

// s3Store is the object store of an s3 output: each chunk is one object,
// staged under <data_dir>/tmp/<output>/ (objectSink) and uploaded from the
// staged file: in one PutObject up to multipart_threshold, above it in a
// multipart upload read part by part from the file (uploadParts). Every
// upload carries If-None-Match: * so S3 refuses to overwrite, and metadata
// naming the chunk id and the digest of its records (digest.go); a refusal
// (412) of an object whose metadata names the same chunk and digest counts
// as delivered (a retry after a crash between upload and the buffer's
// delete, whatever the new encoding's bytes).
//
// Errors: throttling, 5xx, timeouts and network errors are returned as is
// (the buffer retries); access denied, no such bucket, invalid credentials
// and other request errors retrying cannot fix are Permanent (the buffer
// moves the chunk to its dead-letter folder), and logged.
//
// put is safe for concurrent use.
type s3Store struct {
	*common
	cfg       *config.S3Output
	client    *s3.Client
	threshold int64
	timeout   time.Duration
	endpoint  string
	// partRetries gives UploadPart calls the SDK's retries (counted).
	partRetries func(*s3.Options)
}

func newS3Sink(opts Options) (*objectSink, error) {
	cfg := opts.Output.S3
	tmpDir := filepath.Join(opts.DataDir, "tmp", opts.Output.Name)
	if !opts.Check {
		if err := os.MkdirAll(tmpDir, 0o755); err != nil {
			return nil, fmt.Errorf("output %s: %w", opts.Output.Name, err)
		}
		// Staged files of a previous run are garbage: their chunks are
		// still in the buffer and will be encoded again.
		if old, _ := filepath.Glob(filepath.Join(tmpDir, ".upload-*")); len(old) > 0 {
			for _, f := range old {
				os.Remove(f)
			}
		}
	}
	c, err := newCommon(opts, &cfg.Encoding, cfg.Path, cfg.ObjectKey, cfg.Buffer.ChunkKeys, tmpDir)
	if err != nil {
		return nil, err
	}
	s := &s3Store{common: c, cfg: cfg, threshold: int64(cfg.MultipartThreshold), timeout: cfg.Timeout.D()}

	awsCfg, err := loadAWSConfig(c.log, cfg.Region, cfg.AccessKeyID, cfg.SecretAccessKey)
	if err != nil {
		return nil, fmt.Errorf("output %s: load AWS config: %w", opts.Output.Name, err)
	}
	s.endpoint = cfg.Endpoint
	if s.endpoint == "" {
		s.endpoint = os.Getenv("AWS_ENDPOINT_URL_S3")
	}
	if s.endpoint == "" {
		s.endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}
	pathStyle := s.endpoint != ""
	if cfg.ForcePathStyle != nil {
		pathStyle = *cfg.ForcePathStyle
	}
	if awsCfg.Region == "" {
		if s.endpoint == "" && !opts.Check {
			return nil, fmt.Errorf("output %s: no AWS region: set region or AWS_REGION", opts.Output.Name)
		}
		awsCfg.Region = "us-east-1" // S3-compatible servers rarely care
	}
	s.client = s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if s.endpoint != "" {
			o.BaseEndpoint = aws.String(s.endpoint)
			// S3-compatible servers may not know the newer checksums.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
		o.UsePathStyle = pathStyle
		// One try per request: a failed upload is retried by the buffer,
		// with its backoff, logged once per attempt and counted there, so
		// retry_max_times: 2 is three tries, not three times the SDK's
		// three. Parts of a multipart upload are the exception (partRetries).
		o.RetryMaxAttempts = 1
	})
	s.partRetries = func(o *s3.Options) {
		o.Retryer = countingRetryer{RetryerV2: retry.NewStandard(), retries: c.metrics.partRetries}
	}
	c.log.Info("s3 sink ready", "bucket", cfg.Bucket, "region", awsCfg.Region, "endpoint", s.endpoint, "path_style", pathStyle)
	return &objectSink{common: c, store: s, kind: "s3", tmpDir: tmpDir, digest: true}, nil
}

// put implements objectStore: upload with If-None-Match: *; a refusal (412)
// is checked against the object already there. timeout bounds both.
func (s *s3Store) put(ctx context.Context, o *object) error {
	uctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	meta := map[string]string{metaChunk: o.info.ID, metaDigest: o.digest, metaEvents: strconv.FormatInt(o.events, 10)}
	err := s.upload(uctx, o, meta)
	if err != nil && isPreconditionFailed(err) {
		err = s.checkExisting(uctx, o.key, o.size, meta)
		if err == nil {
			s.metrics.conflicts.Inc()
			s.log.Info("object already holds this chunk: counted as delivered", "chunk", o.info.ID, "key", o.key, "digest", o.digest)
		}
	}
	if err != nil {
		return s.failed(o.info, o.key, err)
	}
	return nil
}

func (s *s3Store) upload(ctx context.Context, o *object, meta map[string]string) error {
	f, key, size := o.file, o.key, o.size
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	var sse s3types.ServerSideEncryption
	switch s.cfg.ServerSideEncryption {
	case "AES256":
		sse = s3types.ServerSideEncryptionAes256
	case "aws:kms":
		sse = s3types.ServerSideEncryptionAwsKms
	}
	var kmsKey *string
	if s.cfg.SSEKMSKeyID != "" {
		kmsKey = aws.String(s.cfg.SSEKMSKeyID)
	}
	var bucketKey *bool
	if s.cfg.BucketKeyEnabled {
		bucketKey = aws.Bool(true)
	}
	if size <= s.threshold {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:               aws.String(s.cfg.Bucket),
			Key:                  aws.String(key),
			Body:                 f,
			ContentLength:        aws.Int64(size),
			ContentType:          aws.String(o.contentType),
			Metadata:             meta,
			IfNoneMatch:          aws.String("*"),
			ServerSideEncryption: sse,
			SSEKMSKeyId:          kmsKey,
			BucketKeyEnabled:     bucketKey,
			StorageClass:         s3types.StorageClass(s.cfg.StorageClass),
		})
		return err
	}
	return s.uploadParts(ctx, o, meta, sse, kmsKey, bucketKey)
}

// uploadParts uploads the staged file f as a multipart upload: part_size
// parts, three at a time, each read straight from the file through an
// io.SectionReader, so memory does not grow with part or object size. (The
// transfer manager, used before, reads the first multipart_threshold bytes
// and up to four parts into memory per upload: 48 MB per flush worker with
// the defaults, 268 MB of RSS in the overload scenario of BENCHMARKS.md.)
// Completion carries If-None-Match: *; a failed upload is aborted.
func (s *s3Store) uploadParts(ctx context.Context, o *object, meta map[string]string, sse s3types.ServerSideEncryption, kmsKey *string, bucketKey *bool) error {
	f, key, size := o.file, o.key, o.size
	partSize := max(int64(s.cfg.PartSize), 5<<20)
	if n := (size + partSize - 1) / partSize; n > maxParts {
		partSize = (size + maxParts - 1) / maxParts
	}
	parts := int((size + partSize - 1) / partSize)
	var algo s3types.ChecksumAlgorithm
	if s.endpoint == "" { // AWS: CRC32 per part, as the SDK's default
		algo = s3types.ChecksumAlgorithmCrc32
	}
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:               aws.String(s.cfg.Bucket),
		Key:                  aws.String(key),
		ContentType:          aws.String(o.contentType),
		Metadata:             meta,
		ServerSideEncryption: sse,
		SSEKMSKeyId:          kmsKey,
		BucketKeyEnabled:     bucketKey,
		StorageClass:         s3types.StorageClass(s.cfg.StorageClass),
		ChecksumAlgorithm:    algo,
	})
	if err != nil {
		return err
	}
	abort := func() {
		actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: created.UploadId,
		}); err != nil {
			s.log.Warn("abort multipart upload failed (a bucket lifecycle rule for incomplete uploads cleans it up)", "key", key, "error", err)
		}
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make([]s3types.CompletedPart, parts)
	next := make(chan int)
	errs := make(chan error, partConcurrency)
	var wg sync.WaitGroup
	for w := 0; w < min(partConcurrency, parts); w++ {
		wg.Go(func() {
			for i := range next {
				off := int64(i) * partSize
				n := min(partSize, size-off)
				out, err := s.client.UploadPart(pctx, &s3.UploadPartInput{
					Bucket:            aws.String(s.cfg.Bucket),
					Key:               aws.String(key),
					UploadId:          created.UploadId,
					PartNumber:        aws.Int32(int32(i + 1)),
					Body:              io.NewSectionReader(f, off, n),
					ContentLength:     aws.Int64(n),
					ChecksumAlgorithm: algo,
				}, s.partRetries)
				if err != nil {
					errs <- fmt.Errorf("part %d of %d: %w", i+1, parts, err)
					cancel()
					return
				}
				done[i] = s3types.CompletedPart{
					PartNumber:     aws.Int32(int32(i + 1)),
					ETag:           out.ETag,
					ChecksumCRC32:  out.ChecksumCRC32,
					ChecksumCRC32C: out.ChecksumCRC32C,
				}
			}
		})
	}
feed:
	for i := 0; i < parts; i++ {
		select {
		case next <- i:
		case <-pctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		abort()
		return err
	default:
	}
	if err := ctx.Err(); err != nil {
		abort()
		return err
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.cfg.Bucket),
		Key:             aws.String(key),
		UploadId:        created.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: done},
		IfNoneMatch:     aws.String("*"),
	})
	if err != nil {
		abort()
	}
	return err
}

const (
	maxParts        = 10000 // S3's limit on parts per upload
	partConcurrency = 3
)

// checkExisting decides about an object that refused the conditional put,
// by what its metadata says it holds: the same chunk id and record digest
// (meta) is this chunk, delivered earlier. Anything else is a Permanent
// conflict (another writer uses the same node name): the chunk goes to the
// dead letter instead of being counted as delivered. An object without
// maruta's metadata (written by an older maruta, or by someone else) is
// taken as this chunk only when its size equals the staged file's, the rule
// before the metadata existed.
func (s *s3Store) checkExisting(ctx context.Context, key string, size int64, meta map[string]string) error {
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("check existing object: %w", err)
	}
	id, digest := head.Metadata[metaChunk], head.Metadata[metaDigest]
	legacy := id == "" && digest == ""
	switch {
	case !legacy && id == meta[metaChunk] && digest == meta[metaDigest]:
		return nil
	case legacy && aws.ToInt64(head.ContentLength) == size:
		return nil
	}
	s.metrics.errors.WithLabelValues(kindConflict).Inc()
	holds := fmt.Sprintf("chunk %s with records %s", id, digest)
	if legacy {
		holds = fmt.Sprintf("%d bytes without maruta metadata (this chunk encodes to %d)", aws.ToInt64(head.ContentLength), size)
	}
	return delivery.Permanent(fmt.Errorf("object s3://%s/%s holds %s, not chunk %s with records %s: is another maruta using node name %q?",
		s.cfg.Bucket, key, holds, meta[metaChunk], meta[metaDigest], s.keys.Node()))
}

// failed classifies an upload error and counts it. It does not log: the
// buffer logs each failed attempt once, with this error, whether it will
// retry, and when.
func (s *s3Store) failed(info delivery.ChunkInfo, key string, err error) error {
	if delivery.IsPermanent(err) {
		return err
	}
	kind, permanent := classifyS3Error(err)
	s.metrics.errors.WithLabelValues(kind).Inc()
	if permanent {
		return delivery.Permanent(fmt.Errorf("s3 sink %s: upload s3://%s/%s (%s: check bucket, credentials and permissions): %w", s.name, s.cfg.Bucket, key, kind, err))
	}
	return fmt.Errorf("s3 sink %s: upload s3://%s/%s (%s): %w", s.name, s.cfg.Bucket, key, kind, err)
}

// countingRetryer is the SDK's standard retryer (3 tries, backoff with
// jitter) for the parts of a multipart upload, counting its retries. A
// part is retried on its own because failing the upload would send every
// part of the object again at the buffer's next attempt.
type countingRetryer struct {
	aws.RetryerV2
	retries prometheus.Counter
}

// RetryDelay is called once before each retry.
func (r countingRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	r.retries.Inc()
	return r.RetryerV2.RetryDelay(attempt, err)
}

// permanentCodes are S3 error codes that retrying cannot fix.
var permanentCodes = map[string]bool{
	"AccessDenied": true, "AllAccessDisabled": true, "AccountProblem": true,
	"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "InvalidToken": true,
	"NoSuchBucket": true, "InvalidBucketName": true, "InvalidStorageClass": true,
	"InvalidArgument": true, "InvalidEncryptionAlgorithmError": true,
	"KMS.DisabledException": true, "KMS.NotFoundException": true, "KMS.InvalidKeyUsageException": true,
	"KMS.KMSInvalidStateException": true, "AuthorizationHeaderMalformed": true,
	"InvalidBucketState": true, "MethodNotAllowed": true, "Forbidden": true,
	"UnrecognizedClientException": true, "InvalidClientTokenId": true,
}

// throttleCodes are S3 error codes asking to slow down.
var throttleCodes = map[string]bool{
	"SlowDown": true, "Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true,
	"TooManyRequestsException": true, "ServiceUnavailable": true, "RequestThrottled": true,
}

// classifyS3Error returns the error kind and whether retrying is useless.
func classifyS3Error(err error) (kind string, permanent bool) {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return kindNetwork, false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		switch {
		case permanentCodes[code]:
			return kindPermanent, true
		case throttleCodes[code]:
			return kindThrottle, false
		}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return kindNetwork, false
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch st := re.HTTPStatusCode(); {
		case st == 0: // no response
			return kindNetwork, false
		case st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable:
			return kindThrottle, false
		case st >= 500:
			return kindServer, false
		case st == http.StatusForbidden || st == http.StatusNotFound || st == http.StatusBadRequest || st == http.StatusMethodNotAllowed:
			return kindPermanent, true
		case st == http.StatusConflict || st == http.StatusRequestTimeout:
			return kindServer, false
		}
		return kindOther, false
	}
	return kindOther, false
}

// isPreconditionFailed reports a refused conditional put (412).
func isPreconditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed" {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}
