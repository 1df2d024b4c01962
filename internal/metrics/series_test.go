package metrics

import (
	"bytes"
	"cmp"
	"errors"
	"math"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// pair is one per-account vector of New and its client_golang twin: the
// same name, help, labels and buckets, registered on a registry of its own.
// Each function returns the series with the given label values.
type pair struct {
	labels  []string
	compact func(lvs ...string) any
	client  func(lvs ...string) any
	delete  func(prometheus.Labels) (compact, client int)
}

var helpRE = regexp.MustCompile(`help: ("(?:[^"\\]|\\.)*")`)

// pairs returns a pair for every vector of m made in series.go, the
// twins registered on reg.
func pairs(t testing.TB, m *Metrics, reg prometheus.Registerer) map[string]pair {
	t.Helper()
	out := map[string]pair{}
	for _, v := range m.perAccount {
		var f *family
		var compact func(lvs ...string) any
		switch c := v.vec.(type) {
		case *CounterVec:
			f, compact = c.family, labelled(c)
		case *GaugeVec:
			f, compact = c.family, labelled(c)
		case *HistogramVec:
			f, compact = c.family, labelled(c)
		default:
			continue // PendingAges, a collector of its own
		}
		quoted := helpRE.FindStringSubmatch(f.desc.String())
		if quoted == nil {
			t.Fatalf("no help in %s", f.desc)
		}
		help, err := strconv.Unquote(quoted[1])
		if err != nil {
			t.Fatal(err)
		}
		var client func(lvs ...string) any
		var twin interface {
			prometheus.Collector
			DeletePartialMatch(prometheus.Labels) int
		}
		switch f.kind {
		case counterKind:
			c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: f.name, Help: help}, f.labels)
			twin, client = c, labelled(c)
		case gaugeKind:
			c := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: f.name, Help: help}, f.labels)
			twin, client = c, labelled(c)
		case histogramKind:
			c := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: f.name, Help: help, Buckets: f.bounds}, f.labels)
			twin, client = c, labelled(c)
		}
		reg.MustRegister(twin)
		out[f.name] = pair{
			labels: f.labels, compact: compact, client: client,
			delete: func(l prometheus.Labels) (int, int) { return f.DeletePartialMatch(l), twin.DeletePartialMatch(l) },
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d compact vectors in New", len(out))
	}
	return out
}

// labelled is the series look-up of a vector, compact or client_golang's,
// returning the series as any.
func labelled[M any](v interface{ WithLabelValues(...string) M }) func(lvs ...string) any {
	return func(lvs ...string) any { return v.WithLabelValues(lvs...) }
}

// exposition is the text format of the families of g named in names.
func exposition(t *testing.T, g prometheus.Gatherer, names map[string]pair) string {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, f := range fams {
		if _, ok := names[f.GetName()]; ok {
			if _, err := expfmt.MetricFamilyToText(&buf, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	return buf.String()
}

// op is one call on the series of a metric with the label values lvs.
type op struct {
	metric string
	lvs    []string
	do     func(series any) // nil: only made
}

func inc(s any)               { s.(interface{ Inc() }).Inc() }
func dec(s any)               { s.(prometheus.Gauge).Dec() }
func add(v float64) func(any) { return func(s any) { s.(interface{ Add(float64) }).Add(v) } }
func sub(v float64) func(any) { return func(s any) { s.(prometheus.Gauge).Sub(v) } }
func set(v float64) func(any) { return func(s any) { s.(prometheus.Gauge).Set(v) } }
func observe(vs ...float64) func(any) {
	return func(s any) {
		for _, v := range vs {
			s.(prometheus.Observer).Observe(v)
		}
	}
}

// latencyEdges are the delivery latency bounds, the floats just below and
// above each, and values outside them.
func latencyEdges(m *Metrics) []float64 {
	var vs []float64
	for _, b := range m.DeliveryLatency.bounds {
		vs = append(vs, b, math.Nextafter(b, math.Inf(-1)), math.Nextafter(b, math.Inf(+1)))
	}
	return append(vs, 0, -1, 1e9, math.Inf(+1))
}

// The same calls on the compact vectors and on client_golang's give the
// same exposition: names, HELP, TYPE, labels (escaped), values, buckets
// with le="+Inf", _sum and _count.
func TestExpositionMatchesClientGolang(t *testing.T) {
	edges := latencyEdges(New())
	odd := "ma\"g\\a\nzin ü"
	tests := []struct {
		name string
		ops  []op
		want []string // in the exposition
	}{
		{"made, never set", []op{
			{"poller_polls_total", []string{"acme", "ok"}, nil},
			{"poller_outbox_pending", []string{"acme"}, nil},
			{"poller_delivery_latency_seconds", []string{"acme"}, nil},
		}, []string{`poller_delivery_latency_seconds_bucket{account="acme",le="+Inf"} 0`, `poller_polls_total{account="acme",result="ok"} 0`}},
		{"counters", []op{
			{"poller_polls_total", []string{"acme", "ok"}, inc},
			{"poller_polls_total", []string{"acme", "ok"}, inc},
			{"poller_polls_total", []string{"acme", "error"}, add(0.25)},
			{"poller_api_requests_total", []string{"acme", "history", "503"}, add(3)},
			{"poller_deliveries_total", []string{odd, "1", "dead"}, inc},
			{"poller_reconciled_events_total", []string{"acme"}, add(0)},
		}, []string{`poller_polls_total{account="acme",result="ok"} 2`, `account="ma\"g\\a\nzin ü"`}},
		{"gauges", []op{
			{"poller_outbox_pending", []string{"acme"}, set(5)},
			{"poller_outbox_pending", []string{"acme"}, dec},
			{"poller_outbox_pending", []string{"acme"}, sub(2.5)},
			{"poller_outbox_pending", []string{"acme"}, add(-1)},
			{"poller_dead_letters", []string{"acme"}, inc},
			{"poller_cursor_history_id", []string{"acme"}, set(1 << 53)},
			{"poller_last_poll_success_timestamp_seconds", []string{"acme"}, set(1.8e9 + 0.123)},
			{"poller_account_up", []string{""}, set(math.NaN())},
			{"poller_poll_interval_seconds", []string{"acme"}, set(math.Inf(-1))},
		}, []string{`poller_outbox_pending{account="acme"} 0.5`, `poller_account_up{account=""} NaN`}},
		{"histogram on and next to every bound", []op{
			{"poller_delivery_latency_seconds", []string{"acme"}, observe(edges...)},
			{"poller_delivery_latency_seconds", []string{"other"}, observe(0.005)},
		}, []string{`poller_delivery_latency_seconds_bucket{account="other",le="0.005"} 1`, `poller_delivery_latency_seconds_count{account="acme"} 52`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, reg := New(), prometheus.NewPedanticRegistry()
			ps := pairs(t, m, reg)
			for _, o := range tc.ops {
				p, ok := ps[o.metric]
				if !ok {
					t.Fatalf("no compact vector %s", o.metric)
				}
				for _, s := range []any{p.compact(o.lvs...), p.client(o.lvs...)} {
					if o.do != nil {
						o.do(s)
					}
				}
			}
			want := exposition(t, reg, ps)
			if got := exposition(t, m.Registry, ps); got != want {
				t.Errorf("exposition differs from client_golang's\ngot:\n%s\nwant:\n%s", got, want)
			}
			for _, w := range tc.want {
				if !strings.Contains(want, w) {
					t.Errorf("exposition has no %s:\n%s", w, want)
				}
			}
		})
	}
}

// DeletePartialMatch drops the series client_golang's drops: any label
// subset, an unknown label drops nothing, an empty set everything.
func TestDeletePartialMatch(t *testing.T) {
	tests := []struct {
		labels prometheus.Labels
		want   int
	}{
		{prometheus.Labels{"account": "a"}, 4},
		{prometheus.Labels{"account": "a", "webhook": "1"}, 2},
		{prometheus.Labels{"webhook": "1", "result": "ok"}, 2},
		{prometheus.Labels{"result": "retry"}, 1},
		{prometheus.Labels{"account": "b", "webhook": "2", "result": "ok"}, 1},
		{prometheus.Labels{"account": "missing"}, 0},
		{prometheus.Labels{"account": "a", "nope": "x"}, 0},
		{prometheus.Labels{"account": ""}, 1},
		{prometheus.Labels{}, 7},
	}
	for _, tc := range tests {
		m, reg := New(), prometheus.NewPedanticRegistry()
		ps := pairs(t, m, reg)
		p := ps["poller_deliveries_total"]
		for _, lvs := range [][]string{
			{"a", "1", "ok"}, {"a", "1", "retry"}, {"a", "2", "ok"}, {"a", "2", "dead"},
			{"b", "1", "ok"}, {"b", "2", "ok"}, {"", "1", "dead"},
		} {
			inc(p.compact(lvs...))
			inc(p.client(lvs...))
		}
		compact, client := p.delete(tc.labels)
		if compact != tc.want || client != tc.want {
			t.Errorf("%v: removed %d series, client_golang %d, want %d", tc.labels, compact, client, tc.want)
		}
		if got, want := exposition(t, m.Registry, ps), exposition(t, reg, ps); got != want {
			t.Errorf("%v: exposition after delete\ngot:\n%s\nwant:\n%s", tc.labels, got, want)
		}
	}
}

// A wrong number of label values or one not UTF-8 is an error (a panic
// from WithLabelValues) and makes no series, so a scrape never fails.
func TestLabelValueErrors(t *testing.T) {
	tests := []struct {
		name string
		lvs  []string
		want error
	}{
		{"none", nil, errLabelCount},
		{"too few", []string{"acme"}, errLabelCount},
		{"too many", []string{"acme", "1", "ok", "x"}, errLabelCount},
		{"0xff", []string{"acme", "a\xffb", "ok"}, errLabelUTF8},
		{"cut sequence", []string{"acme", "1", "\xc3"}, errLabelUTF8},
		{"surrogate", []string{"\xed\xa0\x80", "1", "ok"}, errLabelUTF8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New()
			c, err := m.DeliveriesTotal.GetMetricWithLabelValues(tc.lvs...)
			if !errors.Is(err, tc.want) || c != nil {
				t.Errorf("GetMetricWithLabelValues(%q) = %v, %v; want nil, %v", tc.lvs, c, err, tc.want)
			}
			func() {
				defer func() {
					if r, _ := recover().(error); !errors.Is(r, tc.want) {
						t.Errorf("WithLabelValues(%q) panicked with %v, want %v", tc.lvs, r, tc.want)
					}
				}()
				m.DeliveriesTotal.WithLabelValues(tc.lvs...)
			}()
			if n := testutil.CollectAndCount(m.DeliveriesTotal); n != 0 {
				t.Errorf("%d series made", n)
			}
			if _, err := m.Registry.Gather(); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := New().PollsTotal.GetMetricWithLabelValues("acme", "ok"); err != nil {
		t.Errorf("valid values: %v", err)
	}
}

// A value equal to a bound counts in that bound's bucket ("le"), one just
// above in the next; +Inf is the count.
func TestHistogramBuckets(t *testing.T) {
	v := newHistogramVec("h", "h", []float64{1, 2, 5, math.Inf(+1)}, []string{"l"})
	tests := []struct {
		value float64
		want  [3]uint64 // cumulative counts of le 1, 2, 5 after this and the earlier values
	}{
		{1, [3]uint64{1, 1, 1}},
		{math.Nextafter(1, 2), [3]uint64{1, 2, 2}},
		{-3, [3]uint64{2, 3, 3}},
		{5, [3]uint64{2, 3, 4}},
		{5.5, [3]uint64{2, 3, 4}},
		{math.Inf(+1), [3]uint64{2, 3, 4}},
		{2, [3]uint64{2, 4, 5}},
	}
	h := v.WithLabelValues("x")
	sum := 0.0
	for i, tc := range tests {
		h.Observe(tc.value)
		sum += tc.value
		var got [3]uint64
		out := new(dto.Metric)
		if err := h.(prometheus.Metric).Write(out); err != nil {
			t.Fatal(err)
		}
		hist := out.GetHistogram()
		for j, b := range hist.GetBucket() {
			got[j] = b.GetCumulativeCount()
		}
		if len(hist.GetBucket()) != 3 || got != tc.want || hist.GetSampleCount() != uint64(i+1) || hist.GetSampleSum() != sum {
			t.Errorf("after %v: buckets %v count %d sum %v, want %v, %d, %v", tc.value, got, hist.GetSampleCount(), hist.GetSampleSum(), tc.want, i+1, sum)
		}
	}
	for _, bad := range [][]float64{{1, 1}, {2, 1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("bounds %v accepted", bad)
				}
			}()
			newHistogramVec("h", "h", bad, nil)
		}()
	}
}

// A counter panics on a negative increment, as client_golang's; a gauge
// does not.
func TestNegativeAdd(t *testing.T) {
	type adder = interface{ Add(float64) }
	counter := func(m *Metrics) adder { return m.PollsTotal.WithLabelValues("a", "ok") }
	gauge := func(m *Metrics) adder { return m.OutboxPending.WithLabelValues("a") }
	tests := []struct {
		name  string
		s     func(m *Metrics) adder
		v     float64
		panic bool
	}{
		{"counter -1", counter, -1, true},
		{"counter -0.001", counter, -0.001, true},
		{"counter 0", counter, 0, false},
		{"gauge -1", gauge, -1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s(New())
			func() {
				defer func() {
					r := recover()
					if got := r != nil; got != tc.panic || (got && !errors.Is(r.(error), errCounterDecrease)) {
						t.Errorf("Add(%v) panicked with %v, want a panic: %v", tc.v, r, tc.panic)
					}
				}()
				s.Add(tc.v)
			}()
			want := tc.v
			if tc.panic {
				want = 0
			}
			if got := testutil.ToFloat64(s.(prometheus.Collector)); got != want {
				t.Errorf("value %v, want %v", got, want)
			}
		})
	}
}

// Series are updated and made while the registry is gathered: nothing is
// lost, and every gathered histogram is consistent.
func TestSeriesConcurrent(t *testing.T) {
	m := New()
	const workers, rounds = 8, 20000
	stop, gathers := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		for {
			fams, err := m.Registry.Gather()
			if err != nil {
				t.Error(err)
			}
			for _, f := range fams {
				for _, s := range f.GetMetric() {
					if h := s.GetHistogram(); h != nil {
						bs := h.GetBucket()
						if !slices.IsSortedFunc(bs, func(a, b *dto.Bucket) int { return cmp.Compare(a.GetCumulativeCount(), b.GetCumulativeCount()) }) ||
							bs[len(bs)-1].GetCumulativeCount() > h.GetSampleCount() {
							t.Errorf("inconsistent histogram %v", h)
						}
					}
				}
			}
			n++
			runtime.Gosched() // leave the workers the other processor too
			select {
			case <-stop:
				gathers <- n
				return
			default:
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			own := strconv.Itoa(w)
			polls, latency := m.PollsTotal.WithLabelValues("acme", "ok"), m.DeliveryLatency.WithLabelValues("acme")
			for i := range rounds {
				polls.Inc() // held, as poll and deliver hold theirs
				latency.Observe(0.5)
				m.OutboxPending.WithLabelValues("acme").Add(0.5)
				m.APIRequestsTotal.WithLabelValues("acme", own, strconv.Itoa(i%10)).Inc()
			}
		})
	}
	wg.Wait()
	close(stop)
	t.Logf("%d gathers", <-gathers)
	total := float64(workers * rounds)
	if got := testutil.ToFloat64(m.PollsTotal.WithLabelValues("acme", "ok")); got != total {
		t.Errorf("polls %v, want %v", got, total)
	}
	if got := testutil.ToFloat64(m.OutboxPending.WithLabelValues("acme")); got != total/2 {
		t.Errorf("pending %v, want %v", got, total/2)
	}
	for w := range workers {
		for code := range 10 {
			if got := testutil.ToFloat64(m.APIRequestsTotal.WithLabelValues("acme", strconv.Itoa(w), strconv.Itoa(code))); got != rounds/10 {
				t.Errorf("api requests %d/%d: %v, want %v", w, code, got, rounds/10)
			}
		}
	}
	out := new(dto.Metric)
	if err := m.DeliveryLatency.WithLabelValues("acme").(prometheus.Metric).Write(out); err != nil {
		t.Fatal(err)
	}
	if h := out.GetHistogram(); h.GetSampleCount() != uint64(total) || h.GetSampleSum() != total/2 {
		t.Errorf("latency count %d sum %v, want %v, %v", h.GetSampleCount(), h.GetSampleSum(), total, total/2)
	}
}

// Looking up an existing series does not allocate.
func TestLookupDoesNotAllocate(t *testing.T) {
	m := New()
	m.DeliveriesTotal.WithLabelValues("acme", "1", "ok")
	account := strings.Repeat("a", 40)
	m.APIRequestsTotal.WithLabelValues(account, "history", "200")
	if n := testing.AllocsPerRun(100, func() {
		m.DeliveriesTotal.WithLabelValues("acme", "1", "ok").Inc()
		m.APIRequestsTotal.WithLabelValues(account, "history", "200").Inc()
	}); n != 0 {
		t.Errorf("%v allocations a look-up", n)
	}
}

// otherValues are the label values next to the account in heapPerSeries.
var otherValues = map[string]string{
	"endpoint": "history", "code": "200", "type": "status_changed", "webhook": "1", "result": "ok", "kind": "condition",
}

// heapPerSeries makes one series of each per-account vector for accounts
// accounts, the compact ones or client_golang's, and returns the heap
// they hold, per series.
func heapPerSeries(t testing.TB, accounts int, clientGolang bool) float64 {
	m, reg := New(), prometheus.NewRegistry()
	ps := pairs(t, m, reg)
	names := make([]string, accounts) // in the daemon the config holds them
	for i := range names {
		names[i] = "account-" + strconv.Itoa(i)
	}
	var lvs []string
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, name := range names {
		for _, p := range ps {
			lvs = append(lvs[:0], name)
			for _, l := range p.labels[1:] {
				lvs = append(lvs, otherValues[l])
			}
			if clientGolang {
				p.client(lvs...)
			} else {
				p.compact(lvs...)
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(m)
	runtime.KeepAlive(reg)
	runtime.KeepAlive(names)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(accounts*len(ps))
}

// The compact series hold well under half the heap of client_golang's.
func TestSeriesHeap(t *testing.T) {
	compact, client := heapPerSeries(t, 2000, false), heapPerSeries(t, 2000, true)
	t.Logf("bytes a series: compact %.0f, client_golang %.0f", compact, client)
	if compact <= 0 || compact > client/2 {
		t.Errorf("compact series hold %.0f bytes each, client_golang's %.0f", compact, client)
	}
}

// BenchmarkSeriesHeap reports the heap a series holds at 10,000 accounts.
func BenchmarkSeriesHeap(b *testing.B) {
	for _, tc := range []struct {
		name         string
		clientGolang bool
	}{{"compact", false}, {"client_golang", true}} {
		b.Run(tc.name, func(b *testing.B) {
			var per float64
			for b.Loop() {
				per = heapPerSeries(b, 10_000, tc.clientGolang)
			}
			b.ReportMetric(per, "B/series")
		})
	}
}

// SetToCurrentTime sets the Unix time in seconds, as client_golang's.
func TestSetToCurrentTime(t *testing.T) {
	g := New().LastPollSuccess.WithLabelValues("acme")
	before := float64(time.Now().UnixNano()) / 1e9
	g.SetToCurrentTime()
	after := float64(time.Now().UnixNano()) / 1e9
	if got := testutil.ToFloat64(g); got < before || got > after {
		t.Errorf("SetToCurrentTime: %v, not within [%v, %v]", got, before, after)
	}
}
