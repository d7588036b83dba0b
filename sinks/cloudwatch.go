package sinks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/delivery"
	"github.com/marutalog/maruta/internal/event"
	"github.com/marutalog/maruta/internal/msgpack"
	"github.com/marutalog/maruta/internal/ruby"
)

// PutLogEvents limits, from the CloudWatch Logs API reference
// (PutLogEvents, as of 2025; the event size was 256 KB before):
//
//   - a batch is at most 1,048,576 bytes, counted as the sum of the
//     messages' UTF-8 bytes plus 26 bytes per event;
//   - at most 10,000 events;
//   - an event is at most 1 MB; with its 26 bytes a message is therefore
//     at most 1,048,550 bytes (config.CloudWatchMaxMessage);
//   - events in chronological order, else the call fails;
//   - the valid events (from 14 days past to 2 hours future) of a batch
//     span at most 24 hours, else the call fails;
//   - events older than 14 days or than the group's retention, or more
//     than 2 hours in the future, are rejected while the others are
//     stored (rejectedLogEventsInfo: tooOldLogEventEndIndex,
//     expiredLogEventEndIndex, tooNewLogEventStartIndex);
//   - the sequence token is ignored (parallel calls to a stream are fine);
//     the former 5 requests per second per stream quota is gone, calls are
//     throttled per account and Region (ThrottlingException), a quota
//     raised through Service Quotas.
const (
	cwMaxBatchBytes = 1048576
	cwEventOverhead = 26
	cwMaxEvents     = 10000
	cwMaxSpanMillis = 24 * 3600 * 1000
)

// cwMaxBackoff bounds the SDK's backoff between its tries; var for tests.
var cwMaxBackoff = 20 * time.Second

// CloudWatchLogs is the sink of a cloudwatch_logs output.
//
// How a chunk travels: every event's log group and stream are rendered
// from the templates and its message built (message_keys' values joined
// by spaces, or the record as JSON; longer than max_message_length: split
// into events of the same time, or truncated, counted); each stream's
// events are sorted by time (stable) and sent in batches within the limits
// above, streams in the order they first appear. The batches of a stream
// are a pure function of the chunk and the settings, and how many events
// of each stream were accepted is remembered (eventProgress), so a chunk
// the buffer retries skips them: CloudWatch Logs cannot recognise a resend.
//
// Retries: the SDK retries throttling, 5xx (ServiceUnavailableException)
// and network errors itself, 3 tries with jittered backoff up to 20s,
// because a short burst is common and a retry of one batch is cheap; then
// the error goes back to the buffer, which retries the chunk with its own
// backoff (retry_wait … retry_max_interval, until retry_timeout) — a long
// outage waits on disk, not in a goroutine. ResourceNotFoundException
// creates the group (with retention_in_days and kms_key_id) and the stream
// when auto_create_stream is set and sends again; otherwise, and for
// AccessDeniedException, InvalidParameterException and bad credentials,
// the chunk is Permanent (dead letter). Events the service rejects for
// their time are counted (maruta_sink_dropped_events_total{reason=
// too_old|expired|too_new}) and logged, never retried. An event whose
// group or stream template has no value fails the chunk before anything is
// sent (Permanent). Missing credentials are retried: they may appear (an
// instance role attached late).
//
// Write is safe for concurrent use.
type CloudWatchLogs struct {
	eventSinkBase
	cfg      *config.CloudWatchLogsOutput
	client   *cloudwatchlogs.Client
	dest     *destTemplates
	progress *eventProgress
	maxMsg   int
	truncate bool
	timeout  time.Duration
	oversize *prometheus.CounterVec
}

var _ delivery.Sink = (*CloudWatchLogs)(nil)

// cwGroupClean and cwStreamClean make rendered names valid: the
// characters the service does not allow become '_', an empty name "_",
// at most 512 characters.
func cwGroupClean(s string) string {
	return cwClean(s, func(r rune) bool {
		return r == '.' || r == '-' || r == '_' || r == '/' || r == '#' || r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
}

func cwStreamClean(s string) string {
	return cwClean(s, func(r rune) bool { return r != ':' && r != '*' && r >= 0x20 && r != 0x7f && r != 0xfffd })
}

func cwClean(s string, ok func(rune) bool) string {
	s = strings.ToValidUTF8(s, "\ufffd")
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == 512 {
			break
		}
		if !ok(r) {
			r = '_'
		}
		b.WriteRune(r)
		n++
	}
	if n == 0 {
		return "_"
	}
	return b.String()
}

// NewCloudWatchLogs builds the sink of a cloudwatch_logs output: it loads
// the AWS configuration (region and credential chain) without calling AWS.
func NewCloudWatchLogs(opts Options) (*CloudWatchLogs, error) {
	out := opts.Output
	if out == nil || out.CloudWatchLogs == nil {
		return nil, errors.New("new cloudwatch_logs sink: not a cloudwatch_logs output")
	}
	cfg := out.CloudWatchLogs
	s := &CloudWatchLogs{
		eventSinkBase: newEventSinkBase(opts),
		cfg:           cfg,
		dest:          newDestTemplates([]string{cfg.LogGroupName, cfg.LogStreamName}, []func(string) string{cwGroupClean, cwStreamClean}),
		maxMsg:        cfg.MaxMessageLength,
		truncate:      cfg.Oversize == config.OversizeTruncate,
		timeout:       cfg.Timeout.D(),
	}
	if s.maxMsg <= 0 || s.maxMsg > config.CloudWatchMaxMessage {
		s.maxMsg = config.CloudWatchMaxMessage
	}
	s.oversize = newOversizeCounter(opts)
	for _, k := range []string{kindThrottle, kindServer, kindNetwork, kindPermanent, kindOther} {
		s.sm.errors.WithLabelValues(k)
	}
	for _, r := range []string{"too_old", "expired", "too_new", "empty_message"} {
		s.sm.dropped.WithLabelValues(r)
	}

	awsCfg, err := loadAWSConfig(s.log, cfg.Region, cfg.AccessKeyID, cfg.SecretAccessKey,
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.MaxBackoff = cwMaxBackoff
			})
		}))
	if err != nil {
		return nil, fmt.Errorf("output %s: load AWS config: %w", out.Name, err)
	}
	if awsCfg.Region == "" && !opts.Check {
		return nil, fmt.Errorf("output %s: no AWS region: set region or AWS_REGION", out.Name)
	}
	s.client = cloudwatchlogs.NewFromConfig(awsCfg, func(o *cloudwatchlogs.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	sig := fmt.Sprintf("v1 %q %q %q %d %s", cfg.LogGroupName, cfg.LogStreamName, cfg.MessageKeys, s.maxMsg, cfg.Oversize)
	progressDir := opts.DataDir
	if opts.Check {
		progressDir = "" // kept in memory: nothing on disk is touched
	}
	s.progress = newEventProgress(progressDir, out.Name, sig, s.log)
	s.log.Info("cloudwatch_logs sink ready", "region", awsCfg.Region, "endpoint", cfg.Endpoint,
		"log_group_name", cfg.LogGroupName, "log_stream_name", cfg.LogStreamName, "auto_create_stream", cfg.AutoCreateStream)
	return s, nil
}

// Close implements delivery.Sink.
func (s *CloudWatchLogs) Close() error { return nil }

// cwStream is one stream's events of a chunk.
type cwStream struct {
	group, name string
	events      []cwtypes.InputLogEvent
}

func (st *cwStream) key() string { return st.group + "\x00" + st.name }

// Write implements delivery.Sink: see CloudWatchLogs.
func (s *CloudWatchLogs) Write(ctx context.Context, c delivery.Chunk) error {
	start := time.Now()
	info := c.Info()
	defer func() { s.sm.duration.Observe(since(start)) }()
	streams, err := s.collect(c, info.ID)
	if err != nil {
		s.sm.errors.WithLabelValues(kindPermanent).Inc()
		s.log.Error("chunk cannot be sent; it goes to the dead letter", "chunk", info.ID, "err", err)
		s.progress.forget(info.ID)
		return fmt.Errorf("cloudwatch_logs chunk %s: %w", info.ID, err)
	}
	done := s.progress.get(info.ID)
	for _, st := range streams {
		err = s.sendStream(ctx, st, done)
		if err != nil {
			break
		}
	}
	if err != nil {
		kind, permanent := classifyCWError(err)
		s.sm.errors.WithLabelValues(kind).Inc()
		if permanent {
			s.progress.forget(info.ID)
			s.log.Error("chunk refused; it goes to the dead letter", "chunk", info.ID, "kind", kind, "err", err)
			return fmt.Errorf("cloudwatch_logs chunk %s: %w", info.ID, delivery.Permanent(err))
		}
		s.progress.set(info.ID, done)
		s.log.Warn("chunk not delivered; the buffer retries it (accepted batches are not sent again)", "chunk", info.ID, "kind", kind, "err", err)
		return fmt.Errorf("cloudwatch_logs chunk %s: %w", info.ID, err)
	}
	s.progress.forget(info.ID)
	s.sm.inputBytes.Add(float64(info.Bytes))
	return nil
}

// collect renders every event's stream and message.
func (s *CloudWatchLogs) collect(c delivery.Chunk, id string) ([]*cwStream, error) {
	byKey := map[[2]string]*cwStream{}
	var streams []*cwStream
	var missing, empty, invalidUTF8 int
	var firstMissing, missingTag string
	var msg []byte
	err := c.Scan(func(tag string, t event.Time, record []byte) error {
		r := s.dest.render(tag, t, record)
		if r.missing != "" {
			if missing++; missing == 1 {
				firstMissing, missingTag = r.missing, strings.Clone(tag)
			}
			return nil
		}
		var inv int
		msg, inv = s.message(msg[:0], record)
		invalidUTF8 += inv
		if len(msg) == 0 {
			empty++
			return nil
		}
		k := [2]string{r.names[0], r.names[1]}
		st := byKey[k]
		if st == nil {
			st = &cwStream{group: k[0], name: k[1]}
			byKey[k] = st
			streams = append(streams, st)
		}
		ts := t.UnixMilli()
		if len(msg) > s.maxMsg {
			action := "split"
			if s.truncate {
				action = "truncate"
			}
			s.oversize.WithLabelValues(action).Inc()
		}
		return splitUTF8(msg, s.maxMsg, s.truncate, func(p []byte) error {
			st.events = append(st.events, cwtypes.InputLogEvent{Timestamp: aws.Int64(ts), Message: aws.String(string(p))})
			return nil
		})
	})
	if err != nil {
		return nil, delivery.Permanent(fmt.Errorf("read chunk: %w", err))
	}
	if missing > 0 {
		return nil, delivery.Permanent(fmt.Errorf("%d events have no value for %s in log_group_name %q / log_stream_name %q (first with tag %s): give the key a default (${key:-default}) or route those events elsewhere",
			missing, firstMissing, s.cfg.LogGroupName, s.cfg.LogStreamName, missingTag))
	}
	s.sm.invalidUTF8.Add(float64(invalidUTF8))
	if empty > 0 {
		s.sm.dropped.WithLabelValues("empty_message").Add(float64(empty))
		s.log.Warn("events dropped: message_keys are all missing or empty (CloudWatch Logs takes no empty message)",
			"chunk", id, "reason", "empty_message", "events", empty, "message_keys", strings.Join(s.cfg.MessageKeys, ","))
	}
	for _, st := range streams {
		slices.SortStableFunc(st.events, func(a, b cwtypes.InputLogEvent) int {
			return int(min(max(*a.Timestamp-*b.Timestamp, -1), 1))
		})
	}
	return streams, nil
}

// message appends the event's message: message_keys' values (Ruby's to_s)
// joined by a space, empty ones left out, or the record as JSON. Invalid
// UTF-8 becomes U+FFFD (counted).
func (s *CloudWatchLogs) message(dst, record []byte) ([]byte, int) {
	if len(s.cfg.MessageKeys) == 0 {
		out, _, inv, err := msgpack.AppendJSON(dst, record, 100)
		if err != nil {
			return dst, 0
		}
		return out, inv
	}
	for _, k := range s.cfg.MessageKeys {
		v, found, err := msgpack.MapGet(record, k, 100)
		if err != nil || !found {
			continue
		}
		n := len(dst)
		if n > 0 {
			dst = append(dst, ' ')
		}
		before := len(dst)
		dst = ruby.AppendToS(dst, v)
		if len(dst) == before {
			dst = dst[:n]
		}
	}
	inv := 0
	if !utf8.Valid(dst) {
		clean := strings.ToValidUTF8(string(dst), "\ufffd")
		inv = strings.Count(clean, "\ufffd") - strings.Count(string(dst), "\ufffd")
		dst = append(dst[:0], clean...)
	}
	return dst, inv
}

// sendStream sends a stream's events from done[key] on, batch by batch.
func (s *CloudWatchLogs) sendStream(ctx context.Context, st *cwStream, done map[string]int) error {
	evs := st.events[min(done[st.key()], len(st.events)):]
	for len(evs) > 0 {
		n := cwBatchLen(evs)
		if err := s.put(ctx, st, evs[:n]); err != nil {
			return err
		}
		done[st.key()] += n
		evs = evs[n:]
	}
	return nil
}

// cwBatchLen returns how many of the sorted events fit in one batch.
func cwBatchLen(evs []cwtypes.InputLogEvent) int {
	size := 0
	first := *evs[0].Timestamp
	for i, e := range evs {
		sz := len(*e.Message) + cwEventOverhead
		if i == cwMaxEvents || size+sz > cwMaxBatchBytes || *e.Timestamp-first >= cwMaxSpanMillis {
			return i
		}
		size += sz
	}
	return len(evs)
}

// put sends one batch, creating the group and stream when allowed.
func (s *CloudWatchLogs) put(ctx context.Context, st *cwStream, batch []cwtypes.InputLogEvent) error {
	in := &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(st.group), LogStreamName: aws.String(st.name), LogEvents: batch}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.client.PutLogEvents(cctx, in)
	var nf *cwtypes.ResourceNotFoundException
	if errors.As(err, &nf) && s.cfg.AutoCreateStream {
		if err = s.create(cctx, st); err == nil {
			out, err = s.client.PutLogEvents(cctx, in)
		}
	}
	if err != nil {
		return fmt.Errorf("log group %q stream %q: %w", st.group, st.name, err)
	}
	accepted := len(batch)
	if rej := out.RejectedLogEventsInfo; rej != nil {
		old, expired, tooNew := 0, 0, 0
		if rej.TooOldLogEventEndIndex != nil {
			old = min(int(*rej.TooOldLogEventEndIndex), len(batch))
		}
		if rej.ExpiredLogEventEndIndex != nil {
			expired = max(min(int(*rej.ExpiredLogEventEndIndex), len(batch))-old, 0)
		}
		if rej.TooNewLogEventStartIndex != nil {
			tooNew = max(len(batch)-max(int(*rej.TooNewLogEventStartIndex), old+expired), 0)
		}
		for reason, n := range map[string]int{"too_old": old, "expired": expired, "too_new": tooNew} {
			if n > 0 {
				s.sm.dropped.WithLabelValues(reason).Add(float64(n))
			}
		}
		accepted -= old + expired + tooNew
		s.log.Warn("events rejected by CloudWatch Logs for their time (older than 14 days, older than the group's retention, or more than 2 hours ahead); not retried",
			"log_group", st.group, "log_stream", st.name, "too_old", old, "expired", expired, "too_new", tooNew,
			"first", time.UnixMilli(*batch[0].Timestamp).UTC(), "last", time.UnixMilli(*batch[len(batch)-1].Timestamp).UTC())
	}
	bytes := 0
	for _, e := range batch {
		bytes += len(*e.Message) + cwEventOverhead
	}
	s.sm.objects.Inc()
	s.sm.bytes.Add(float64(bytes))
	s.sm.rows.Add(float64(accepted))
	return nil
}

// create makes the stream's group (with retention and KMS key) and the
// stream; ones that exist already are fine.
func (s *CloudWatchLogs) create(ctx context.Context, st *cwStream) error {
	_, err := s.client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(st.group), LogStreamName: aws.String(st.name)})
	var nf *cwtypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		return ignoreExists(err)
	}
	in := &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(st.group)}
	if s.cfg.KMSKeyID != "" {
		in.KmsKeyId = aws.String(s.cfg.KMSKeyID)
	}
	if _, err := s.client.CreateLogGroup(ctx, in); ignoreExists(err) != nil {
		return fmt.Errorf("create log group: %w", err)
	}
	if s.cfg.RetentionInDays > 0 {
		if _, err := s.client.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{
			LogGroupName: aws.String(st.group), RetentionInDays: aws.Int32(int32(s.cfg.RetentionInDays))}); err != nil {
			return fmt.Errorf("set retention of log group: %w", err)
		}
	}
	s.log.Info("created log group", "log_group", st.group, "retention_in_days", s.cfg.RetentionInDays, "kms", s.cfg.KMSKeyID != "")
	_, err = s.client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(st.group), LogStreamName: aws.String(st.name)})
	return ignoreExists(err)
}

func ignoreExists(err error) error {
	var ae *cwtypes.ResourceAlreadyExistsException
	if errors.As(err, &ae) {
		return nil
	}
	return err
}

// classifyCWError decides once whether retrying can help.
func classifyCWError(err error) (kind string, permanent bool) {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return kindNetwork, false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ExpiredTokenException", "ExpiredToken":
			return kindOther, false
		case "ThrottlingException", "LimitExceededException", "RequestLimitExceeded", "ServiceQuotaExceededException":
			return kindThrottle, false
		case "ServiceUnavailableException", "InternalFailure", "InternalServerException", "OperationAbortedException":
			return kindServer, false
		case "ResourceNotFoundException", "AccessDeniedException", "AccessDeniedExceptionException", "UnrecognizedClientException",
			"InvalidSignatureException", "InvalidParameterException", "ValidationException", "InvalidClientTokenId", "SerializationException":
			return kindPermanent, true
		}
	}
	if kind, permanent := classifyS3Error(err); kind != kindOther {
		return kind, permanent
	}
	return kindOther, false
}
