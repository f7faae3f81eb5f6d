// Package metrics serves a running session's figures to Prometheus. Nothing
// here runs on a real-time thread: counters the C side keeps (the clock's
// per-lane stats, the JACK callback's) are read only when Prometheus
// scrapes, and the latency histograms are fed by the goroutine that already
// drains the supervisor's events.
package metrics

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/supervisor"
)

// Sources are what a scrape reads. Every field may be nil.
type Sources struct {
	Lanes   int
	Lane    func(l int) audioclock.LaneStats // the clock's counters for lane l
	Workers func() (spares, owners, other int)
	DSPLoad func() float64 // the audio server's own figure, percent (JACK's cpu load)
}

// Session is one session's metrics.
type Session struct {
	reg       *prometheus.Registry
	failovers *prometheus.CounterVec
	detection *prometheus.HistogramVec
	failover  *prometheus.HistogramVec
	restarts  prometheus.Counter
	failed    prometheus.Counter
	srv       *http.Server
	ln        net.Listener
}

// latencyBuckets are log-spaced from 10 µs to about 20 ms, in seconds: the
// paths' figures (tens of µs for a death word, ms for a deadline) fall in
// different buckets.
var latencyBuckets = prometheus.ExponentialBuckets(10e-6, 2, 12)

// New registers a session's metrics over src.
func New(src Sources) *Session {
	s := &Session{reg: prometheus.NewRegistry()}
	s.failovers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "understudy_failovers_total",
		Help: "Lanes handed to a spare after their owner failed, by detection path."}, []string{"path"})
	s.detection = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "understudy_detection_seconds",
		Help: "From an injected fault to the monitor's decision, by path (known only for injected faults).", Buckets: latencyBuckets},
		[]string{"path"})
	s.failover = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "understudy_failover_seconds",
		Help: "From detection to the new owner's first committed block, by path.", Buckets: latencyBuckets}, []string{"path"})
	s.restarts = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_worker_restarts_total",
		Help: "Worker processes reaped (each is replaced by a new spare)."})
	s.failed = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_lanes_failed_total",
		Help: "Lanes given up by the restart policy."})
	s.reg.MustRegister(s.failovers, s.detection, s.failover, s.restarts, s.failed, &scrape{src: src})
	return s
}

// Observe records one supervisor event. Call it from the goroutine that
// drains the events: it takes locks and may allocate.
func (s *Session) Observe(e supervisor.Event) {
	switch e.Kind {
	case supervisor.EvFailover:
		p := e.Path.String()
		s.failovers.WithLabelValues(p).Inc()
		if e.FaultNS != 0 {
			s.detection.WithLabelValues(p).Observe(e.Detection().Seconds())
		}
		if d := e.Failover(); d >= 0 {
			s.failover.WithLabelValues(p).Observe(d.Seconds())
		}
	case supervisor.EvWorkerExited:
		s.restarts.Inc()
	case supervisor.EvLaneFailed:
		s.failed.Inc()
	}
}

// Serve listens on addr (host:port; port 0 picks one) and serves /metrics
// until Close. It returns the address it listens on.
func (s *Session) Serve(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	s.ln = ln
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return ln.Addr().String(), nil
}

// Close stops serving; it is idempotent.
func (s *Session) Close() error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Close()
	s.srv = nil
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// scrape reads the C side's counters when Prometheus asks, and only then.
type scrape struct{ src Sources }

var (
	dXruns     = prometheus.NewDesc("understudy_xruns_total", "Output blocks replaced by the fallback because they were late.", []string{"lane"}, nil)
	dBypassed  = prometheus.NewDesc("understudy_bypassed_blocks_total", "Output blocks the owner marked as fallback (poison input bypassed).", []string{"lane"}, nil)
	dDelivered = prometheus.NewDesc("understudy_delivered_blocks_total", "Output blocks delivered.", []string{"lane"}, nil)
	dCorrupt   = prometheus.NewDesc("understudy_ring_corruptions_total", "Ring indices an owner wrote that the protocol cannot produce.", []string{"lane"}, nil)
	dUnderrun  = prometheus.NewDesc("understudy_source_underruns_total", "Periods with no input block ready.", []string{"lane"}, nil)
	dWorkers   = prometheus.NewDesc("understudy_workers", "Worker processes by state.", []string{"state"}, nil)
	dLoad      = prometheus.NewDesc("understudy_dsp_load_percent", "The audio server's DSP load as it reports it.", nil, nil)
)

func (c *scrape) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dXruns, dBypassed, dDelivered, dCorrupt, dUnderrun, dWorkers, dLoad} {
		ch <- d
	}
}

func (c *scrape) Collect(ch chan<- prometheus.Metric) {
	if c.src.Lane != nil {
		for l := 0; l < c.src.Lanes; l++ {
			st := c.src.Lane(l)
			lane := fmt.Sprint(l)
			ch <- prometheus.MustNewConstMetric(dXruns, prometheus.CounterValue, float64(st.Xruns), lane)
			ch <- prometheus.MustNewConstMetric(dBypassed, prometheus.CounterValue, float64(st.Bypassed), lane)
			ch <- prometheus.MustNewConstMetric(dDelivered, prometheus.CounterValue, float64(st.Delivered), lane)
			ch <- prometheus.MustNewConstMetric(dCorrupt, prometheus.CounterValue, float64(st.Corruptions), lane)
			ch <- prometheus.MustNewConstMetric(dUnderrun, prometheus.CounterValue, float64(st.SrcUnderruns), lane)
		}
	}
	if c.src.Workers != nil {
		spares, owners, other := c.src.Workers()
		ch <- prometheus.MustNewConstMetric(dWorkers, prometheus.GaugeValue, float64(spares), "spare")
		ch <- prometheus.MustNewConstMetric(dWorkers, prometheus.GaugeValue, float64(owners), "owner")
		ch <- prometheus.MustNewConstMetric(dWorkers, prometheus.GaugeValue, float64(other), "other")
	}
	if c.src.DSPLoad != nil {
		ch <- prometheus.MustNewConstMetric(dLoad, prometheus.GaugeValue, c.src.DSPLoad())
	}
}
