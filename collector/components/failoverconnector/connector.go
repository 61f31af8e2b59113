// Package failoverconnector hands each batch of logs to the first pipeline, in priority order,
// that accepts it.
//
// It owns the order and the hand-over only; bounded retry belongs to each pipeline's exporter
// (retry_on_failure.max_elapsed_time), which must not queue asynchronously except in the last
// pipeline, so that a failure comes back here as an error. A batch every pipeline refused is
// returned as an error to the receiver, which keeps it (filelog does not advance past it).
package failoverconnector // import "kubeinfer.io/otelcol/components/failoverconnector"

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pipeline"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
)

// TypeStr is the component type used in collector configuration.
const TypeStr = "kubeinfer_failover"

// Config lists the pipelines in priority order.
type Config struct {
	Priority []pipeline.ID `mapstructure:"priority"`
}

// Validate requires at least one pipeline.
func (c *Config) Validate() error {
	if len(c.Priority) == 0 {
		return errors.New("priority must name at least one pipeline")
	}
	return nil
}

type failover struct {
	component.StartFunc
	component.ShutdownFunc
	consumers []consumer.Logs
	names     []string
	logger    *zap.Logger
	handled   metric.Int64Counter
}

// NewFactory returns the factory the collector's builder registers.
func NewFactory() connector.Factory {
	return connector.NewFactory(
		component.MustNewType(TypeStr),
		func() component.Config { return &Config{} },
		connector.WithLogsToLogs(createLogsToLogs, component.StabilityLevelDevelopment),
	)
}

func createLogsToLogs(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Logs) (connector.Logs, error) {
	router, ok := next.(connector.LogsRouterAndConsumer)
	if !ok {
		return nil, errors.New("kubeinfer_failover needs pipelines as its consumers")
	}
	handled, err := set.MeterProvider.Meter("kubeinfer.io/otelcol/failover").Int64Counter(
		"kubeinfer_log_records_output",
		metric.WithDescription("Log records by the output that accepted them, or none."),
	)
	if err != nil {
		return nil, err
	}
	f := &failover{logger: set.Logger, handled: handled}
	for _, id := range cfg.(*Config).Priority {
		c, err := router.Consumer(id)
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", id, err)
		}
		f.consumers = append(f.consumers, c)
		f.names = append(f.names, id.String())
	}
	return f, nil
}

func (*failover) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

// ConsumeLogs tries each pipeline in order with its own copy of the batch.
func (f *failover) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	var errs error
	for i, c := range f.consumers {
		batch := plog.NewLogs()
		ld.CopyTo(batch)
		err := c.ConsumeLogs(ctx, batch)
		if err == nil {
			f.handled.Add(ctx, int64(ld.LogRecordCount()), metric.WithAttributes(attribute.String("output", f.names[i])))
			return nil
		}
		f.logger.Warn("Output refused a batch; failing over", zap.String("pipeline", f.names[i]), zap.Error(err))
		errs = errors.Join(errs, fmt.Errorf("%s: %w", f.names[i], err))
	}
	f.handled.Add(ctx, int64(ld.LogRecordCount()), metric.WithAttributes(attribute.String("output", "none")))
	return errs
}
