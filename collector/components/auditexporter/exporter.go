// Package auditexporter appends log records to a hash-chained, append-only audit file.
//
// It owns the file format and the chain only; which records are audit records is the pipeline's
// business (a filter in front of it). Each line is
//
//	<seq> TAB <prev> TAB <hash> TAB <record JSON>
//
// where hash = hex(SHA-256("<seq>\t<prev>\t<record JSON>")) and prev is the previous line's
// hash (64 zeros for the first). A head file next to it holds the last "<seq> <hash>", so a
// truncated tail is detected as well as a changed or removed line (`kubeinfer audit verify`).
// The file is opened O_APPEND and synced after every batch; on start the chain resumes from the
// head file.
package auditexporter // import "kubeinfer.io/otelcol/components/auditexporter"

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"kubeinfer.io/otelcol/components/internal/record"
)

// TypeStr is the component type used in collector configuration.
const TypeStr = "kubeinfer_audit"

// Genesis is the prev of the first line.
var Genesis = strings.Repeat("0", 64)

// Config names the audit file.
type Config struct {
	Path string `mapstructure:"path"`
}

// Validate requires a path.
func (c *Config) Validate() error {
	if c.Path == "" {
		return errors.New("path is required")
	}
	return nil
}

type auditFile struct {
	path string
	mu   sync.Mutex
	file *os.File
	seq  uint64
	prev string
}

// NewFactory returns the factory the collector's builder registers.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(
		component.MustNewType(TypeStr),
		func() component.Config { return &Config{} },
		exporter.WithLogs(createLogs, component.StabilityLevelDevelopment),
	)
}

func createLogs(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	a := &auditFile{path: cfg.(*Config).Path, prev: Genesis}
	return exporterhelper.NewLogs(ctx, set, cfg, a.push,
		exporterhelper.WithStart(a.start), exporterhelper.WithShutdown(a.shutdown))
}

func (a *auditFile) headPath() string { return a.path + ".head" }

func (a *auditFile) start(context.Context, component.Host) error {
	if err := os.MkdirAll(filepath.Dir(a.path), 0o750); err != nil {
		return err
	}
	if head, err := os.ReadFile(a.headPath()); err == nil {
		fields := strings.Fields(string(head))
		if len(fields) != 2 {
			return fmt.Errorf("audit head %s is malformed", a.headPath())
		}
		seq, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return fmt.Errorf("audit head %s: %w", a.headPath(), err)
		}
		a.seq, a.prev = seq, fields[1]
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(a.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	a.file = f
	return nil
}

func (a *auditFile) shutdown(context.Context) error {
	if a.file == nil {
		return nil
	}
	return a.file.Close()
}

func (a *auditFile) push(_ context.Context, ld plog.Logs) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out strings.Builder
	seq, prev := a.seq, a.prev
	err := record.Each(ld, func(res pcommon.Resource, r plog.LogRecord) error {
		body, err := record.JSON(res, r)
		if err != nil {
			return err
		}
		seq++
		sum := sha256.Sum256([]byte(fmt.Sprintf("%d\t%s\t%s", seq, prev, body)))
		hash := hex.EncodeToString(sum[:])
		fmt.Fprintf(&out, "%d\t%s\t%s\t%s\n", seq, prev, hash, body)
		prev = hash
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := a.file.WriteString(out.String()); err != nil {
		return err
	}
	if err := a.file.Sync(); err != nil {
		return err
	}
	head := a.headPath() + ".tmp"
	if err := os.WriteFile(head, []byte(fmt.Sprintf("%d %s\n", seq, prev)), 0o640); err != nil {
		return err
	}
	if err := os.Rename(head, a.headPath()); err != nil {
		return err
	}
	a.seq, a.prev = seq, prev
	return nil
}
