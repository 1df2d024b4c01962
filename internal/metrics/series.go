package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The per-account vectors are this file's CounterVec, GaugeVec and
// HistogramVec, not client_golang's: at 10,000 accounts client_golang's
// per-series state (label pairs, created timestamp, self-collector, hot and
// cold histogram counts) was about a quarter of the daemon's heap. A series
// here is its label values, one float and, for a histogram, its bucket
// counts; the exposition is built from them at scrape time with
// client_golang's const metrics, so it reads as before.

var (
	// errLabelCount: a series asked for with more or fewer values than
	// its vector has labels.
	errLabelCount = errors.New("wrong number of label values")
	// errLabelUTF8: the exposition format allows only UTF-8 label values.
	errLabelUTF8 = errors.New("label value is not valid UTF-8")
	// errCounterDecrease: the panic of a negative counter increment, as
	// client_golang's.
	errCounterDecrease = errors.New("counter cannot decrease in value")
)

// labelSep joins a series' label values into its family's map key. No
// valid UTF-8 string holds the byte 0xff and a series is made only of valid
// values, so a key splits back into exactly its values.
const labelSep = "\xff"

// keyBufSize is the stack buffer a look-up builds its key in: most keys fit,
// so a look-up of an existing series does not allocate.
const keyBufSize = 128

// kind is what a family's series are.
type kind uint8

const (
	counterKind kind = iota
	gaugeKind
	histogramKind
)

// family is one metric name with its series by label values.
type family struct {
	name   string
	desc   *prometheus.Desc
	labels []string
	kind   kind
	bounds []float64 // a histogram's upper bounds, increasing, +Inf left out

	mu     sync.RWMutex
	series map[string]*series // label values joined by labelSep
}

func newFamily(k kind, name, help string, labels []string, bounds []float64) *family {
	if n := len(bounds); n > 0 && math.IsInf(bounds[n-1], +1) {
		bounds = bounds[:n-1] // +Inf is always the last bucket
	}
	for i := 1; i < len(bounds); i++ {
		if bounds[i] <= bounds[i-1] {
			panic(fmt.Sprintf("metrics: %s: bucket bounds not increasing: %v", name, bounds))
		}
	}
	return &family{
		name:   name,
		desc:   prometheus.NewDesc(name, help, labels, nil),
		labels: labels,
		kind:   k,
		bounds: bounds,
		series: map[string]*series{},
	}
}

// get returns the series with the label values lvs, made on first use.
// Values are checked only when a series is made: a key found in the map
// can only come from valid values (see labelSep).
func (f *family) get(lvs []string) (*series, error) {
	if len(lvs) != len(f.labels) {
		return nil, fmt.Errorf("%s: %w: %d values for the labels %q", f.name, errLabelCount, len(lvs), f.labels)
	}
	var buf [keyBufSize]byte
	key := buf[:0]
	for i, v := range lvs {
		if i > 0 {
			key = append(key, labelSep...)
		}
		key = append(key, v...)
	}
	f.mu.RLock()
	s := f.series[string(key)]
	f.mu.RUnlock()
	if s != nil {
		return s, nil
	}
	for i, v := range lvs {
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("%s: %w: %s=%q", f.name, errLabelUTF8, f.labels[i], v)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.series[string(key)]; s != nil {
		return s, nil // made meanwhile
	}
	s = &series{fam: f, key: string(key)}
	if f.kind == histogramKind {
		counts := make(bucketCounts, len(f.bounds)+1)
		s.counts = &counts
	}
	f.series[s.key] = s
	return s, nil
}

// must is get for WithLabelValues, which panics like client_golang's.
func (f *family) must(lvs []string) *series {
	s, err := f.get(lvs)
	if err != nil {
		panic(err)
	}
	return s
}

// DeletePartialMatch drops the series whose labels have the values in
// labels (other labels: any value) and returns how many went; none if
// labels names a label the vector does not have.
func (f *family) DeletePartialMatch(labels prometheus.Labels) int {
	want := make([]string, len(f.labels))
	set := make([]bool, len(f.labels))
	for name, v := range labels {
		i := slices.Index(f.labels, name)
		if i < 0 {
			return 0
		}
		want[i], set[i] = v, true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for key := range f.series {
		if keyMatches(key, want, set) {
			delete(f.series, key)
			n++
		}
	}
	return n
}

// keyMatches reports whether each value of key whose set is true equals
// its want, without splitting key.
func keyMatches(key string, want []string, set []bool) bool {
	for i := range want {
		v, rest, _ := strings.Cut(key, labelSep)
		if set[i] && v != want[i] {
			return false
		}
		key = rest
	}
	return true
}

// Describe implements prometheus.Collector.
func (f *family) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }

// Collect implements prometheus.Collector.
func (f *family) Collect(ch chan<- prometheus.Metric) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, s := range f.series {
		ch <- s.metric()
	}
}

// bucketCounts are a histogram series' observations per bucket, not
// cumulative: one count per bound, then +Inf.
type bucketCounts []atomic.Uint64

// series is one labelled series of a family: a counter, a gauge or a
// histogram, after its family's kind. It has the methods of all three; the
// vectors hand it out as the one interface that fits.
type series struct {
	fam    *family
	key    string        // the label values, as the family's map key
	bits   atomic.Uint64 // float64 bits: the value, or a histogram's sum
	counts *bucketCounts // a histogram's buckets, nil for the others
}

// add adds v to the float in bits.
func (s *series) add(v float64) {
	for {
		old := s.bits.Load()
		if s.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Inc implements prometheus.Counter and prometheus.Gauge.
func (s *series) Inc() { s.add(1) }

// Add implements prometheus.Counter and prometheus.Gauge; a counter
// panics on a negative v, as client_golang's does.
func (s *series) Add(v float64) {
	if v < 0 && s.fam.kind == counterKind {
		panic(errCounterDecrease)
	}
	s.add(v)
}

// Set implements prometheus.Gauge.
func (s *series) Set(v float64) { s.bits.Store(math.Float64bits(v)) }

// Dec implements prometheus.Gauge.
func (s *series) Dec() { s.add(-1) }

// Sub implements prometheus.Gauge.
func (s *series) Sub(v float64) { s.add(-v) }

// SetToCurrentTime implements prometheus.Gauge.
func (s *series) SetToCurrentTime() { s.Set(float64(time.Now().UnixNano()) / 1e9) }

// Observe implements prometheus.Observer: v counts in the first bucket
// whose bound is at least v (the "le" of the exposition), +Inf if none.
// The bucket and the sum are two atomic updates, so a scrape between them
// may see the one without the other; the count is the sum of the buckets,
// so it always equals the +Inf bucket.
func (s *series) Observe(v float64) {
	(*s.counts)[sort.SearchFloat64s(s.fam.bounds, v)].Add(1)
	s.add(v)
}

// metric is the series' current value as a const metric, for Write and
// Collect alike. Its label values were checked when it was made, so it
// does not panic.
func (s *series) metric() prometheus.Metric {
	f := s.fam
	var lvs []string
	if len(f.labels) > 0 {
		lvs = strings.Split(s.key, labelSep)
	}
	v := math.Float64frombits(s.bits.Load())
	switch f.kind {
	case counterKind:
		return prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, v, lvs...)
	case gaugeKind:
		return prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, v, lvs...)
	}
	cumulative := make(map[float64]uint64, len(f.bounds))
	var count uint64
	for i := range *s.counts {
		count += (*s.counts)[i].Load()
		if i < len(f.bounds) {
			cumulative[f.bounds[i]] = count
		}
	}
	return prometheus.MustNewConstHistogram(f.desc, count, v, cumulative, lvs...)
}

// Desc implements prometheus.Metric.
func (s *series) Desc() *prometheus.Desc { return s.fam.desc }

// Write implements prometheus.Metric.
func (s *series) Write(out *dto.Metric) error { return s.metric().Write(out) }

// Describe implements prometheus.Collector.
func (s *series) Describe(ch chan<- *prometheus.Desc) { ch <- s.fam.desc }

// Collect implements prometheus.Collector.
func (s *series) Collect(ch chan<- prometheus.Metric) { ch <- s.metric() }

// vec is a vector whose series are handed out as M: prometheus.Counter,
// prometheus.Gauge or prometheus.Observer, each of which *series is.
type vec[M any] struct{ *family }

// CounterVec, GaugeVec and HistogramVec replace client_golang's vectors of
// the same names.
type (
	CounterVec   = vec[prometheus.Counter]
	GaugeVec     = vec[prometheus.Gauge]
	HistogramVec = vec[prometheus.Observer]
)

// newHistogramVec makes a vector of histograms with the bucket bounds
// buckets (increasing; +Inf is always added).
func newHistogramVec(name, help string, buckets []float64, labels []string) *HistogramVec {
	return &HistogramVec{newFamily(histogramKind, name, help, labels, buckets)}
}

// WithLabelValues returns the series with the label values lvs, made on
// first use; it panics on a wrong number of values or one not UTF-8.
func (v *vec[M]) WithLabelValues(lvs ...string) M { return any(v.must(lvs)).(M) }

// GetMetricWithLabelValues is WithLabelValues returning an error instead
// of panicking.
func (v *vec[M]) GetMetricWithLabelValues(lvs ...string) (M, error) {
	s, err := v.get(lvs)
	if err != nil {
		var none M
		return none, err
	}
	return any(s).(M), nil
}
