// Command gpuallocator-bench runs the NVIDIA device plugin's best-effort GPU allocator
// (github.com/NVIDIA/go-gpuallocator) on a fake device list, for kubeinfer's side-by-side
// placement benchmark (e2e/bench_placement.py).
//
// It reads JSON lines on stdin. The first line describes a node as the device plugin would
// see it:
//
//	{"gpus": 8, "pairs": [[a, b, pcieLink, nvlinks], ...]}
//
// where pcieLink is go-gpuallocator's P2PLinkType for the PCIe common ancestor (1 = cross-CPU
// … 6 = same board) and nvlinks counts NVLinks whose remote PCI bus id is the peer GPU (links
// through an NVSwitch do not count: that is what the library's own discovery finds). Every
// further line is a request, answered with one JSON line:
//
//	{"free": [0, 2, 3], "k": 2, "repeat": 5}  ->  {"gpus": [2, 3], "ns": 12345, "padded": 0}
//
// padded counts nil devices in the policy's answer: when the free GPUs do not divide by k it
// pads the list and can return the padding set, i.e. fewer than k GPUs.
//
// ns is the fastest of `repeat` calls of the policy's Allocate. "free" is passed on in the
// order given, as the kubelet passes available devices. No NVML is touched.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"time"

	"github.com/NVIDIA/go-gpuallocator/gpuallocator"
)

// Highest P2PLinkType of the PCIe levels; NVLink counts n map to pcieSameBoard + n.
const pcieSameBoard = 6

type node struct {
	GPUs  int      `json:"gpus"`
	Pairs [][4]int `json:"pairs"`
}

type request struct {
	Free   []int `json:"free"`
	K      int   `json:"k"`
	Repeat int   `json:"repeat"`
}

type answer struct {
	GPUs   []int `json:"gpus"`
	NS     int64 `json:"ns"`
	Padded int   `json:"padded"`
}

// link builds a P2PLink of the given type. The type lives in the library's internal package,
// so it is set through reflection from its numeric value.
func link(peer *gpuallocator.Device, linkType int) gpuallocator.P2PLink {
	l := gpuallocator.P2PLink{GPU: peer}
	reflect.ValueOf(&l.Type).Elem().SetUint(uint64(linkType))
	return l
}

func buildDevices(n node) ([]*gpuallocator.Device, error) {
	devices := make([]*gpuallocator.Device, n.GPUs)
	for i := range devices {
		d := &gpuallocator.Device{Index: i, Links: map[int][]gpuallocator.P2PLink{}}
		d.UUID = fmt.Sprintf("GPU-fake-%d", i)
		d.PCI.BusID = fmt.Sprintf("00000000:%02X:00.0", 7+12*i)
		devices[i] = d
	}
	for _, p := range n.Pairs {
		a, b, pcie, nvlinks := p[0], p[1], p[2], p[3]
		if a < 0 || b < 0 || a >= n.GPUs || b >= n.GPUs || a == b {
			return nil, fmt.Errorf("bad pair %v", p)
		}
		if pcie < 1 || pcie > pcieSameBoard || nvlinks < 0 || nvlinks > 18 {
			return nil, fmt.Errorf("bad link types in pair %v", p)
		}
		for _, dir := range [][2]int{{a, b}, {b, a}} {
			from, to := devices[dir[0]], devices[dir[1]]
			from.Links[to.Index] = append(from.Links[to.Index], link(to, pcie))
			if nvlinks > 0 {
				from.Links[to.Index] = append(from.Links[to.Index], link(to, pcieSameBoard+nvlinks))
			}
		}
	}
	return devices, nil
}

func allocate(devices []*gpuallocator.Device, r request) answer {
	// Keep the caller's order: the kubelet hands the device plugin its available devices in
	// no particular order, and for one GPU the best-effort policy takes the first.
	available := make([]*gpuallocator.Device, 0, len(r.Free))
	for _, i := range r.Free {
		available = append(available, devices[i])
	}
	policy := gpuallocator.NewBestEffortPolicy()
	repeat := r.Repeat
	if repeat < 1 {
		repeat = 1
	}
	var best time.Duration
	var chosen []*gpuallocator.Device
	for i := 0; i < repeat; i++ {
		start := time.Now()
		chosen = policy.Allocate(available, nil, r.K)
		if took := time.Since(start); i == 0 || took < best {
			best = took
		}
	}
	out := answer{GPUs: []int{}, NS: best.Nanoseconds()}
	for _, d := range chosen {
		if d == nil {
			// The policy can return its padding set (fewer real GPUs than asked for).
			out.Padded++
			continue
		}
		out.GPUs = append(out.GPUs, d.Index)
	}
	sort.Ints(out.GPUs)
	return out
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	var devices []*gpuallocator.Device
	for in.Scan() {
		line := in.Bytes()
		if devices == nil {
			var n node
			if err := json.Unmarshal(line, &n); err != nil {
				fmt.Fprintln(os.Stderr, "node:", err)
				os.Exit(2)
			}
			var err error
			if devices, err = buildDevices(n); err != nil {
				fmt.Fprintln(os.Stderr, "node:", err)
				os.Exit(2)
			}
			continue
		}
		var r request
		if err := json.Unmarshal(line, &r); err != nil {
			fmt.Fprintln(os.Stderr, "request:", err)
			os.Exit(2)
		}
		if err := out.Encode(allocate(devices, r)); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "read:", err)
		os.Exit(1)
	}
}
