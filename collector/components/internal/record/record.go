// Package record turns one log record into the JSON object kubeinfer's file and audit outputs
// write. It owns that shape only.
package record // import "kubeinfer.io/otelcol/components/internal/record"

import (
	"encoding/json"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// JSON encodes a record with its resource attributes; map keys come out sorted.
func JSON(res pcommon.Resource, r plog.LogRecord) ([]byte, error) {
	return json.Marshal(map[string]any{
		"time":       r.Timestamp().AsTime().UTC().Format("2006-01-02T15:04:05.000000000Z"),
		"severity":   r.SeverityText(),
		"body":       r.Body().AsString(),
		"attributes": r.Attributes().AsRaw(),
		"resource":   res.Attributes().AsRaw(),
		"trace_id":   r.TraceID().String(),
	})
}

// Each calls fn for every record of ld, in order, stopping at the first error.
func Each(ld plog.Logs, fn func(pcommon.Resource, plog.LogRecord) error) error {
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		rl := ld.ResourceLogs().At(i)
		for j := 0; j < rl.ScopeLogs().Len(); j++ {
			records := rl.ScopeLogs().At(j).LogRecords()
			for k := 0; k < records.Len(); k++ {
				if err := fn(rl.Resource(), records.At(k)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
