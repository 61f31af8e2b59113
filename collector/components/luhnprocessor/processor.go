// Package luhnprocessor masks payment card numbers in log bodies and string attribute values
// (flattened before it): runs of 13 to 19 digits
// (single spaces or dashes allowed between them) whose Luhn checksum holds.
//
// It owns that one detection; OTTL cannot compute a checksum, and masking every long digit run
// would also mask order ids and timestamps. Non-string bodies pass untouched.
package luhnprocessor // import "kubeinfer.io/otelcol/components/luhnprocessor"

import (
	"context"
	"regexp"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"

	"kubeinfer.io/otelcol/components/internal/record"
)

// TypeStr is the component type used in collector configuration.
const TypeStr = "kubeinfer_luhn"

var candidate = regexp.MustCompile(`\b[0-9](?:[ -]?[0-9]){12,18}\b`)

// Config is the text that replaces a card number.
type Config struct {
	Replacement string `mapstructure:"replacement"`
}

// NewFactory returns the factory the collector's builder registers.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		component.MustNewType(TypeStr),
		func() component.Config { return &Config{Replacement: "<redacted:creditCard>"} },
		processor.WithLogs(createLogs, component.StabilityLevelDevelopment),
	)
}

func createLogs(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	replacement := cfg.(*Config).Replacement
	return processorhelper.NewLogs(ctx, set, cfg, next,
		func(_ context.Context, ld plog.Logs) (plog.Logs, error) {
			err := record.Each(ld, func(_ pcommon.Resource, r plog.LogRecord) error {
				maskValue(r.Body(), replacement)
				r.Attributes().Range(func(_ string, v pcommon.Value) bool {
					maskValue(v, replacement)
					return true
				})
				return nil
			})
			return ld, err
		},
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}))
}

// maskValue masks card numbers in a string value in place; other values pass untouched.
func maskValue(v pcommon.Value, replacement string) {
	if v.Type() == pcommon.ValueTypeStr {
		if masked, changed := Mask(v.Str(), replacement); changed {
			v.SetStr(masked)
		}
	}
}

// Mask replaces every Luhn-valid card number in text.
func Mask(text, replacement string) (string, bool) {
	changed := false
	out := candidate.ReplaceAllStringFunc(text, func(run string) string {
		if !Valid(run) {
			return run
		}
		changed = true
		return replacement
	})
	return out, changed
}

// Valid reports whether the digits of run pass the Luhn checksum.
func Valid(run string) bool {
	sum, double := 0, false
	for i := len(run) - 1; i >= 0; i-- {
		c := run[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
