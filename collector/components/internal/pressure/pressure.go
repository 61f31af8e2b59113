// Package pressure is the disk-pressure level the agent's components share within one process.
//
// It owns measuring a filesystem (statvfs) and publishing its level per device; the disk guard
// processor measures and publishes, the file exporter reads the level of the device its
// directory is on. Levels (the ladder): 0 normal; 1 sampling tightened; 2 also rotate earlier;
// 3 also delete rotated files down to one.
package pressure // import "kubeinfer.io/otelcol/components/internal/pressure"

import (
	"sync"
	"syscall"
)

var (
	mu     sync.Mutex
	levels = map[uint64]int{}
)

// Usage is the used fraction of bytes and inodes of the filesystem holding path, in percent.
func Usage(path string) (bytesPct, inodesPct float64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	if st.Blocks > 0 {
		bytesPct = 100 * float64(st.Blocks-st.Bfree) / float64(st.Blocks)
	}
	if st.Files > 0 {
		inodesPct = 100 * float64(st.Files-st.Ffree) / float64(st.Files)
	}
	return bytesPct, inodesPct, nil
}

// Level maps usage to a ladder step: thresholds split the headroom above them into thirds.
func Level(bytesPct, inodesPct, bytesLimit, inodesLimit float64) int {
	step := func(used, limit float64) int {
		if used < limit {
			return 0
		}
		third := (100 - limit) / 3
		switch {
		case used >= limit+2*third:
			return 3
		case used >= limit+third:
			return 2
		default:
			return 1
		}
	}
	return max(step(bytesPct, bytesLimit), step(inodesPct, inodesLimit))
}

func device(path string) (uint64, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, false
	}
	return uint64(st.Dev), true
}

// Publish records the level of the filesystem holding path.
func Publish(path string, level int) {
	if dev, ok := device(path); ok {
		mu.Lock()
		levels[dev] = level
		mu.Unlock()
	}
}

// Of is the last published level of the filesystem holding path (0 when none was published).
func Of(path string) int {
	dev, ok := device(path)
	if !ok {
		return 0
	}
	mu.Lock()
	defer mu.Unlock()
	return levels[dev]
}
