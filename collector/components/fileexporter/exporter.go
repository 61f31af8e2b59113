// Package fileexporter writes log records as JSON lines to a directory, rotating by size and
// keeping rotated files by count and age, compressed with zstd.
//
// It owns the files under its directory only. The active file is <dir>/current.jsonl
// (appendable, uncompressed); before a record would carry it past max_size it is closed, compressed to
// <dir>/logs-<UTC time>-<seq>.jsonl.zst and removed; then rotated files beyond max_files
// (oldest first) or older than max_age are deleted. Retention also runs on a timer
// (max_age/10, between 1 s and 1 min). Under disk pressure (internal/pressure) it rotates earlier
// and keeps fewer files; the audit file is another component's and never touched. Every batch is synced before the call returns, so a batch this exporter
// accepted is on disk.
package fileexporter // import "kubeinfer.io/otelcol/components/fileexporter"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"kubeinfer.io/otelcol/components/internal/pressure"
	"kubeinfer.io/otelcol/components/internal/record"
)

// TypeStr is the component type used in collector configuration.
const TypeStr = "kubeinfer_file"

const (
	activeName    = "current.jsonl"
	rotatedPrefix = "logs-"
	rotatedSuffix = ".jsonl.zst"
)

// Config is the directory and its rotation and retention limits.
type Config struct {
	Directory    string        `mapstructure:"directory"`
	MaxSizeBytes int64         `mapstructure:"max_size_bytes"`
	MaxAge       time.Duration `mapstructure:"max_age"`
	MaxFiles     int           `mapstructure:"max_files"`
}

// Validate rejects limits that would rotate forever or keep nothing.
func (c *Config) Validate() error {
	var errs error
	if c.Directory == "" {
		errs = errors.Join(errs, errors.New("directory is required"))
	}
	if c.MaxSizeBytes < 1024 {
		errs = errors.Join(errs, errors.New("max_size_bytes must be at least 1024"))
	}
	if c.MaxFiles < 1 {
		errs = errors.Join(errs, errors.New("max_files must be at least 1"))
	}
	if c.MaxAge <= 0 {
		errs = errors.Join(errs, errors.New("max_age must be positive"))
	}
	return errs
}

type files struct {
	cfg      *Config
	mu       sync.Mutex
	active   *os.File
	size     int64
	seq      int
	lastKeep time.Time
	now      func() time.Time
	stop     chan struct{}
}

// NewFactory returns the factory the collector's builder registers.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(
		component.MustNewType(TypeStr),
		func() component.Config {
			return &Config{MaxSizeBytes: 100 << 20, MaxAge: 7 * 24 * time.Hour, MaxFiles: 10}
		},
		exporter.WithLogs(createLogs, component.StabilityLevelDevelopment),
	)
}

func createLogs(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	f := &files{cfg: cfg.(*Config), now: time.Now}
	return exporterhelper.NewLogs(ctx, set, cfg, f.push,
		exporterhelper.WithStart(f.start), exporterhelper.WithShutdown(f.shutdown))
}

func (f *files) start(context.Context, component.Host) error {
	if err := os.MkdirAll(f.cfg.Directory, 0o750); err != nil {
		return err
	}
	if err := f.open(); err != nil {
		return err
	}
	f.stop = make(chan struct{})
	go f.keep(min(time.Minute, max(time.Second, f.cfg.MaxAge/10)), f.stop)
	return nil
}

func (f *files) open() error {
	file, err := os.OpenFile(filepath.Join(f.cfg.Directory, activeName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	info, err := file.Stat()
	if err != nil {
		file.Close()
		return err
	}
	f.active, f.size = file, info.Size()
	return nil
}

func (f *files) shutdown(context.Context) error {
	if f.stop != nil {
		close(f.stop)
	}
	if f.active == nil {
		return nil
	}
	return f.active.Close()
}

func (f *files) push(_ context.Context, ld plog.Logs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []byte
	maxSize, _ := f.limits()
	err := record.Each(ld, func(res pcommon.Resource, r plog.LogRecord) error {
		body, err := record.JSON(res, r)
		if err != nil {
			return err
		}
		line := append(body, '\n')
		// Rotate before a record would carry the file past max_size (a file holds at least one).
		if f.size+int64(len(out)+len(line)) > maxSize && f.size+int64(len(out)) > 0 {
			if err := f.write(out); err != nil {
				return err
			}
			out = out[:0]
			if err := f.rotate(); err != nil {
				return err
			}
		}
		out = append(out, line...)
		return nil
	})
	if err != nil {
		return err
	}
	if err := f.write(out); err != nil {
		return err
	}
	if f.now().Sub(f.lastKeep) >= time.Second {
		f.lastKeep = f.now()
		return f.retain()
	}
	return nil
}

// write appends and syncs data to the active file.
func (f *files) write(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	n, err := f.active.Write(data)
	f.size += int64(n)
	if err != nil {
		return err
	}
	return f.active.Sync()
}

// keep runs retention every interval until stop is closed, so files age out without traffic.
func (f *files) keep(interval time.Duration, stop <-chan struct{}) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
			f.mu.Lock()
			_ = f.retain() // a failed delete is retried on the next tick or batch
			f.mu.Unlock()
		}
	}
}

// rotate compresses the active file into a new rotated file and starts an empty one.
func (f *files) rotate() error {
	if err := f.active.Close(); err != nil {
		return err
	}
	active := filepath.Join(f.cfg.Directory, activeName)
	f.seq++
	name := fmt.Sprintf("%s%s-%06d%s", rotatedPrefix, f.now().UTC().Format("20060102T150405.000000000Z"), f.seq, rotatedSuffix)
	if err := compress(active, filepath.Join(f.cfg.Directory, name)); err != nil {
		return err
	}
	if err := os.Remove(active); err != nil {
		return err
	}
	if err := f.open(); err != nil {
		return err
	}
	return f.retain()
}

func compress(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := to + ".tmp"
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	enc, err := zstd.NewWriter(dst)
	if err == nil {
		_, err = io.Copy(enc, src)
		err = errors.Join(err, enc.Close())
	}
	err = errors.Join(err, dst.Sync(), dst.Close())
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, to)
}

// limits are max_size and max_files as the disk-pressure ladder currently allows: from level 2
// files rotate at a quarter of max_size, at level 3 only the newest rotated file is kept.
func (f *files) limits() (int64, int) {
	size, count := f.cfg.MaxSizeBytes, f.cfg.MaxFiles
	level := pressure.Of(f.cfg.Directory)
	if level >= 2 {
		size = max(1024, size/4)
	}
	if level >= 3 {
		count = 1
	}
	return size, count
}

// retain deletes rotated files past max_files (oldest first) or older than max_age.
func (f *files) retain() error {
	_, maxFiles := f.limits()
	entries, err := os.ReadDir(f.cfg.Directory)
	if err != nil {
		return err
	}
	var rotated []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), rotatedPrefix) && strings.HasSuffix(e.Name(), rotatedSuffix) {
			rotated = append(rotated, e.Name())
		}
	}
	sort.Strings(rotated) // names start with the rotation time: oldest first
	var errs error
	for i, name := range rotated {
		path := filepath.Join(f.cfg.Directory, name)
		info, err := os.Stat(path)
		if err != nil {
			continue
		}
		if len(rotated)-i > maxFiles || f.now().Sub(info.ModTime()) > f.cfg.MaxAge {
			errs = errors.Join(errs, os.Remove(path))
		}
	}
	return errs
}
