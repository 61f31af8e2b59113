// Package ratelimitprocessor drops log records past a token bucket kept per key and severity band.
//
// It owns the buckets and the drop decision only; which records reach it and what happens to the
// kept ones is the pipeline's business. The OpenTelemetry Collector has no log rate limiter, so
// kubeinfer ships this one processor: a bucket per (key attributes, limit) refills at per_second
// tokens a second up to burst; a record that finds its bucket empty is dropped and counted.
package ratelimitprocessor // import "kubeinfer.io/otelcol/components/ratelimitprocessor"

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"go.opentelemetry.io/otel/metric"
)

// TypeStr is the component type used in collector configuration.
const TypeStr = "kubeinfer_ratelimit"

// Limit is one token bucket per key (the values of KeyAttributes, resource attributes) for
// records whose severity number is in [min, max].
type Limit struct {
	Name          string   `mapstructure:"name"`
	KeyAttributes []string `mapstructure:"key_attributes"`
	MinSeverity   int32    `mapstructure:"min_severity"`
	MaxSeverity   int32    `mapstructure:"max_severity"`
	PerSecond     float64  `mapstructure:"per_second"`
	Burst         float64  `mapstructure:"burst"`
}

// Config lists the limits; a record is counted against the first whose band holds it.
type Config struct {
	Limits []Limit `mapstructure:"limits"`
}

// Validate rejects limits that could never admit a record or overlap in severity.
func (c *Config) Validate() error {
	var errs error
	for i, l := range c.Limits {
		if l.PerSecond <= 0 || l.Burst < 1 {
			errs = errors.Join(errs, fmt.Errorf("limits[%d]: per_second must be > 0 and burst >= 1", i))
		}
		if l.MinSeverity > l.MaxSeverity {
			errs = errors.Join(errs, fmt.Errorf("limits[%d]: min_severity > max_severity", i))
		}
	}
	return errs
}

type bucket struct {
	tokens float64
	last   time.Time
}

type limiter struct {
	cfg     *Config
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
	dropped metric.Int64Counter
}

// NewFactory returns the factory the collector's builder registers.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		component.MustNewType(TypeStr),
		func() component.Config { return &Config{} },
		processor.WithLogs(createLogs, component.StabilityLevelDevelopment),
	)
}

func createLogs(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	dropped, err := set.MeterProvider.Meter("kubeinfer.io/otelcol/ratelimit").Int64Counter(
		"kubeinfer_log_records_rate_limited",
		metric.WithDescription("Log records dropped because their token bucket was empty."),
	)
	if err != nil {
		return nil, err
	}
	l := &limiter{cfg: cfg.(*Config), buckets: map[string]*bucket{}, now: time.Now, dropped: dropped}
	return processorhelper.NewLogs(ctx, set, cfg, next, l.process,
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}))
}

func (l *limiter) limitFor(severity int32) (int, bool) {
	for i, lim := range l.cfg.Limits {
		if severity >= lim.MinSeverity && severity <= lim.MaxSeverity {
			return i, true
		}
	}
	return 0, false
}

func (l *limiter) key(res pcommon.Map, index int) string {
	names := l.cfg.Limits[index].KeyAttributes
	parts := make([]string, 0, len(names)+1)
	for _, name := range names {
		value := "" // a record without the attribute shares the bucket of the others without it
		if v, ok := res.Get(name); ok {
			value = v.AsString()
		}
		parts = append(parts, value)
	}
	parts = append(parts, l.cfg.Limits[index].Name)
	return strings.Join(parts, "\x00")
}

// admit takes one token from the record's bucket, refilling it for the time since its last use.
func (l *limiter) admit(key string, lim Limit, now time.Time) bool {
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: lim.Burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(lim.Burst, b.tokens+now.Sub(b.last).Seconds()*lim.PerSecond)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *limiter) process(ctx context.Context, ld plog.Logs) (plog.Logs, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	dropped := map[string]int64{}
	ld.ResourceLogs().RemoveIf(func(rl plog.ResourceLogs) bool {
		res := rl.Resource().Attributes()
		rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool {
			sl.LogRecords().RemoveIf(func(r plog.LogRecord) bool {
				index, limited := l.limitFor(int32(r.SeverityNumber()))
				if !limited || l.admit(l.key(res, index), l.cfg.Limits[index], now) {
					return false
				}
				dropped[l.cfg.Limits[index].Name]++
				return true
			})
			return sl.LogRecords().Len() == 0
		})
		return rl.ScopeLogs().Len() == 0
	})
	for name, n := range dropped {
		l.dropped.Add(ctx, n, metric.WithAttributes(limitAttr(name)))
	}
	if ld.ResourceLogs().Len() == 0 {
		return ld, processorhelper.ErrSkipProcessingData
	}
	return ld, nil
}
