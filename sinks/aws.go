package sinks

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/logging"
)

// loadAWSConfig loads the SDK configuration of an AWS output (s3,
// cloudwatch_logs) without calling AWS: the region when set (else the
// SDK's: AWS_REGION, the profile), static credentials when keyID is set
// (else the SDK's chain: environment, web identity, ECS, EKS pod identity,
// IMDSv2), the SDK's own log at debug level, then extra.
func loadAWSConfig(log *slog.Logger, region, keyID, secret string, extra ...func(*awsconfig.LoadOptions) error) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	if keyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(keyID, secret, "")))
	}
	sdkLog := log.With("from", "aws-sdk")
	opts = append(opts, awsconfig.WithLogger(logging.LoggerFunc(func(_ logging.Classification, format string, v ...any) {
		sdkLog.Debug(fmt.Sprintf(format, v...))
	})))
	return awsconfig.LoadDefaultConfig(context.Background(), append(opts, extra...)...)
}
