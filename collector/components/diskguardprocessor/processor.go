// Package diskguardprocessor runs the node's disk-pressure ladder for the log agent.
//
// It owns measuring the log volume every interval, the level it publishes (internal/pressure:
// the file exporter rotates earlier at level 2 and trims rotated files at level 3) and the first
// step itself: from level 1 it tightens sampling by tighten_factor for records below
// protect_min_severity that are not always-kept, by lowering the per-record sampling priority the
// probabilistic sampler reads after it (so decisions stay consistent by trace id) and raising
// their weight. Each level change is logged once and exported as kubeinfer_disk_pressure_level;
// when usage falls below the thresholds everything reverts.
package diskguardprocessor // import "kubeinfer.io/otelcol/components/diskguardprocessor"

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"kubeinfer.io/otelcol/components/internal/pressure"
	"kubeinfer.io/otelcol/components/internal/record"
)

// TypeStr is the component type used in collector configuration.
const TypeStr = "kubeinfer_diskguard"

// Config is the volume, its thresholds and how sampling tightens under pressure.
type Config struct {
	Path               string        `mapstructure:"path"`
	BytesPercent       float64       `mapstructure:"bytes_percent"`
	InodesPercent      float64       `mapstructure:"inodes_percent"`
	Interval           time.Duration `mapstructure:"interval"`
	TightenFactor      float64       `mapstructure:"tighten_factor"`
	ProtectMinSeverity int32         `mapstructure:"protect_min_severity"`
	PriorityAttribute  string        `mapstructure:"priority_attribute"`
	WeightAttribute    string        `mapstructure:"weight_attribute"`
	KeepAttribute      string        `mapstructure:"keep_attribute"`
}

// Validate rejects thresholds and factors outside their ranges.
func (c *Config) Validate() error {
	var errs error
	if c.Path == "" {
		errs = errors.Join(errs, errors.New("path is required"))
	}
	if c.BytesPercent <= 0 || c.BytesPercent >= 100 || c.InodesPercent <= 0 || c.InodesPercent >= 100 {
		errs = errors.Join(errs, errors.New("bytes_percent and inodes_percent must be in (0, 100)"))
	}
	if c.TightenFactor <= 0 || c.TightenFactor > 1 {
		errs = errors.Join(errs, errors.New("tighten_factor must be in (0, 1]"))
	}
	if c.Interval <= 0 {
		errs = errors.Join(errs, errors.New("interval must be positive"))
	}
	return errs
}

type guard struct {
	cfg    *Config
	logger *zap.Logger
	gauge  metric.Int64Gauge
	mu     sync.Mutex
	level  int
	stop   chan struct{}
	done   sync.WaitGroup
}

// NewFactory returns the factory the collector's builder registers.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		component.MustNewType(TypeStr),
		func() component.Config {
			return &Config{
				BytesPercent: 85, InodesPercent: 90, Interval: 5 * time.Second, TightenFactor: 0.1,
				ProtectMinSeverity: 17, PriorityAttribute: "kubeinfer.sampling.priority",
				WeightAttribute: "kubeinfer.sampling.weight", KeepAttribute: "kubeinfer.always_keep",
			}
		},
		processor.WithLogs(createLogs, component.StabilityLevelDevelopment),
	)
}

func createLogs(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	gauge, err := set.MeterProvider.Meter("kubeinfer.io/otelcol/diskguard").Int64Gauge(
		"kubeinfer_disk_pressure_level",
		metric.WithDescription("Disk-pressure ladder step of the log volume (0 = none)."),
	)
	if err != nil {
		return nil, err
	}
	g := &guard{cfg: cfg.(*Config), logger: set.Logger, gauge: gauge}
	return processorhelper.NewLogs(ctx, set, cfg, next, g.process,
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}),
		processorhelper.WithStart(g.start), processorhelper.WithShutdown(g.shutdown))
}

func (g *guard) start(context.Context, component.Host) error {
	g.measure()
	g.stop = make(chan struct{})
	g.done.Add(1)
	go func() {
		defer g.done.Done()
		ticker := time.NewTicker(g.cfg.Interval)
		defer ticker.Stop()
		for {
			select {
			case <-g.stop:
				return
			case <-ticker.C:
				g.measure()
			}
		}
	}()
	return nil
}

func (g *guard) shutdown(context.Context) error {
	if g.stop != nil {
		close(g.stop)
		g.done.Wait()
	}
	return nil
}

func (g *guard) measure() {
	bytesPct, inodesPct, err := pressure.Usage(g.cfg.Path)
	if err != nil {
		g.logger.Warn("Could not measure the log volume", zap.String("path", g.cfg.Path), zap.Error(err))
		return
	}
	level := pressure.Level(bytesPct, inodesPct, g.cfg.BytesPercent, g.cfg.InodesPercent)
	pressure.Publish(g.cfg.Path, level)
	g.gauge.Record(context.Background(), int64(level), metric.WithAttributes(attribute.String("path", g.cfg.Path)))
	g.mu.Lock()
	previous := g.level
	g.level = level
	g.mu.Unlock()
	if level != previous {
		g.logger.Warn("Disk pressure level changed", zap.String("path", g.cfg.Path),
			zap.Int("from", previous), zap.Int("to", level),
			zap.Float64("bytes_used_percent", bytesPct), zap.Float64("inodes_used_percent", inodesPct))
	}
}

func (g *guard) process(_ context.Context, ld plog.Logs) (plog.Logs, error) {
	g.mu.Lock()
	level := g.level
	g.mu.Unlock()
	if level == 0 {
		return ld, nil
	}
	err := record.Each(ld, func(_ pcommon.Resource, r plog.LogRecord) error {
		g.tighten(r.Attributes(), int32(r.SeverityNumber()), g.cfg.TightenFactor)
		return nil
	})
	return ld, err
}

// tighten multiplies a record's sampling probability (percent; 100 when it has none) by factor.
func (g *guard) tighten(attrs pcommon.Map, severity int32, factor float64) {
	if severity >= g.cfg.ProtectMinSeverity {
		return
	}
	if _, kept := attrs.Get(g.cfg.KeepAttribute); kept {
		return
	}
	priority := 100.0
	if v, ok := attrs.Get(g.cfg.PriorityAttribute); ok && v.Type() == pcommon.ValueTypeDouble {
		priority = v.Double()
	}
	weight := 1.0
	if v, ok := attrs.Get(g.cfg.WeightAttribute); ok && v.Type() == pcommon.ValueTypeDouble {
		weight = v.Double()
	}
	attrs.PutDouble(g.cfg.PriorityAttribute, priority*factor)
	attrs.PutDouble(g.cfg.WeightAttribute, weight/factor)
}
