// Package reportextension posts the agent's record counts and disk-pressure level to the
// kubeinfer operator, which summarises them in the LogPolicy's status and conditions.
//
// It owns reading the agent's own metrics (its Prometheus endpoint on loopback, every
// interval), the report's JSON shape, and proving who reports: with token_file set, each post
// carries that file's content (a projected ServiceAccount token the kubelet rotates, so it is
// read anew every time) as a bearer token, which the operator checks with a TokenReview. It
// must not decide anything from the metrics. A report the operator does not take is logged and
// the next one replaces it (counts are cumulative).
package reportextension // import "kubeinfer.io/otelcol/components/reportextension"

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.uber.org/zap"
)

// TypeStr is the component type used in collector configuration.
const TypeStr = "kubeinfer_report"

// Config says where to read the agent's metrics, where to post, and who is reporting.
type Config struct {
	Endpoint   string        `mapstructure:"endpoint"`
	MetricsURL string        `mapstructure:"metrics_url"`
	Interval   time.Duration `mapstructure:"interval"`
	Namespace  string        `mapstructure:"namespace"`
	Policy     string        `mapstructure:"policy"`
	Node       string        `mapstructure:"node"`
	TokenFile  string        `mapstructure:"token_file"`
}

// Validate requires every field.
func (c *Config) Validate() error {
	if c.Endpoint == "" || c.MetricsURL == "" || c.Namespace == "" || c.Policy == "" || c.Node == "" {
		return errors.New("endpoint, metrics_url, namespace, policy and node are required")
	}
	if c.Interval <= 0 {
		return errors.New("interval must be positive")
	}
	return nil
}

// Report is what the operator receives.
type Report struct {
	Namespace         string             `json:"namespace"`
	Policy            string             `json:"policy"`
	Node              string             `json:"node"`
	Seen              float64            `json:"seen"`
	Kept              float64            `json:"kept"`
	Dropped           map[string]float64 `json:"dropped"`
	DiskPressureLevel float64            `json:"diskPressureLevel"`
}

type reporter struct {
	cfg    *Config
	logger *zap.Logger
	client *http.Client
	stop   chan struct{}
	done   sync.WaitGroup
}

// NewFactory returns the factory the collector's builder registers.
func NewFactory() extension.Factory {
	return extension.NewFactory(
		component.MustNewType(TypeStr),
		func() component.Config { return &Config{Interval: 10 * time.Second} },
		func(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
			return &reporter{cfg: cfg.(*Config), logger: set.Logger, client: &http.Client{Timeout: 5 * time.Second}}, nil
		},
		component.StabilityLevelDevelopment,
	)
}

func (r *reporter) Start(context.Context, component.Host) error {
	r.stop = make(chan struct{})
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		ticker := time.NewTicker(r.cfg.Interval)
		defer ticker.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-ticker.C:
				if err := r.report(); err != nil {
					r.logger.Info("Could not report to the operator", zap.Error(err))
				}
			}
		}
	}()
	return nil
}

func (r *reporter) Shutdown(context.Context) error {
	if r.stop != nil {
		close(r.stop)
		r.done.Wait()
	}
	return nil
}

// series sums the samples of each metric name whose labels contain every wanted label.
type series map[string][]sample

type sample struct {
	labels string
	value  float64
}

func (s series) sum(name string, labels ...string) float64 {
	total := 0.0
	for _, smp := range s[name] {
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(smp.labels, l)
		}
		if ok {
			total += smp.value
		}
	}
	return total
}

func parse(text []byte) series {
	out := series{}
	scanner := bufio.NewScanner(bytes.NewReader(text))
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		if cut < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[cut+1:], 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(line[:cut], "{")
		out[name] = append(out[name], sample{labels: labels, value: v})
	}
	return out
}

// Build turns the agent's metrics into a report.
func Build(cfg *Config, s series) Report {
	processed := func(p string) float64 {
		return s.sum("otelcol_processor_incoming_items_total", `processor="`+p+`"`) -
			s.sum("otelcol_processor_outgoing_items_total", `processor="`+p+`"`)
	}
	delivered := s.sum("kubeinfer_log_records_output_total")
	undelivered := s.sum("kubeinfer_log_records_output_total", `output="none"`)
	return Report{
		Namespace: cfg.Namespace, Policy: cfg.Policy, Node: cfg.Node,
		Seen: s.sum("otelcol_receiver_accepted_log_records_total", `receiver="filelog"`),
		Kept: delivered - undelivered,
		Dropped: map[string]float64{
			"levelOff":    processed("filter/levels-off"),
			"sampling":    s.sum("otelcol_processor_probabilistic_sampler_count_logs_sampled_total", `sampled="false"`),
			"rateLimit":   s.sum("kubeinfer_log_records_rate_limited_total"),
			"undelivered": undelivered,
		},
		DiskPressureLevel: s.sum("kubeinfer_disk_pressure_level"),
	}
}

func (r *reporter) report() error {
	resp, err := r.client.Get(r.cfg.MetricsURL)
	if err != nil {
		return err
	}
	var text bytes.Buffer
	_, err = text.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	body, err := json.Marshal(Build(r.cfg, parse(text.Bytes())))
	if err != nil {
		return err
	}
	request, err := http.NewRequest(http.MethodPost, r.cfg.Endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	request.Header.Set("Content-Type", "application/json")
	if r.cfg.TokenFile != "" {
		token, err := os.ReadFile(r.cfg.TokenFile)
		if err != nil {
			return fmt.Errorf("reading the report token: %w", err)
		}
		request.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	post, err := r.client.Do(request)
	if err != nil {
		return err
	}
	post.Body.Close()
	if post.StatusCode/100 != 2 {
		return fmt.Errorf("operator answered %s", post.Status)
	}
	return nil
}
