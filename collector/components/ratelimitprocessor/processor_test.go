package ratelimitprocessor

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

func TestBucketAdmitsBurstThenRefillsAtPerSecond(t *testing.T) {
	l := &limiter{cfg: &Config{Limits: []Limit{{Name: "info", PerSecond: 10, Burst: 5}}}, buckets: map[string]*bucket{}}
	lim, start := l.cfg.Limits[0], time.Unix(0, 0)
	admitted := 0
	for i := 0; i < 8; i++ {
		if l.admit("pod-a", lim, start) {
			admitted++
		}
	}
	if admitted != 5 {
		t.Fatalf("admitted %d of 8 at once, want the burst of 5", admitted)
	}
	if !l.admit("pod-b", lim, start) {
		t.Fatal("another pod's bucket must be full")
	}
	admitted = 0
	for i := 0; i < 8; i++ {
		if l.admit("pod-a", lim, start.Add(500*time.Millisecond)) {
			admitted++
		}
	}
	if admitted != 5 {
		t.Fatalf("admitted %d after 0.5 s at 10/s, want 5", admitted)
	}
}

func TestKeyOfARecordWithoutTheKeyAttributesIsEmptyNotACrash(t *testing.T) {
	l := &limiter{cfg: &Config{Limits: []Limit{{Name: "info", KeyAttributes: []string{"k8s.pod.name"}}}}}
	withPod := pcommon.NewMap()
	withPod.PutStr("k8s.pod.name", "llama-0")
	if l.key(pcommon.NewMap(), 0) == l.key(withPod, 0) {
		t.Fatal("a pod's bucket must differ from the bucket of records without a pod")
	}
}
