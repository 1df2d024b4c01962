package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	rtmetrics "runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/gcpace"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm/crmsim"
)

// BenchmarkAccounts measures the daemon's steady-state cost with many
// accounts (goal: 10,000 accounts on @every 1m under 10% of one core and
// 400 MB RSS, goroutines growing with work in flight, not with accounts).
// The simulator and the receiver run in a child process, so the figures
// are the daemon's alone; it runs once whatever -benchtime says:
//
//	go test -run '^$' -bench Accounts -benchtime=1x -timeout 60m ./internal/daemon/
//
// DAEMON_LONG_ACCOUNTS (10000), DAEMON_LONG_SCHEDULE ("@every 1m"),
// DAEMON_LONG_DURATION (3m, measured after a warm-up of one interval plus
// the 30 s offset spread) and DAEMON_LONG_EVENTS (approvals per second over
// all accounts, 2) change the load; DAEMON_LONG_HEAPPROFILE=FILE writes a
// heap profile at the end, DAEMON_LONG_CPUPROFILE=FILE a CPU profile of the
// measured window.

// helperEnv makes the test binary act as the simulator process.
const helperEnv = "DAEMON_CRM_HELPER"

func TestMain(m *testing.M) {
	if n := os.Getenv(helperEnv); n != "" {
		crmHelper(n)
		return
	}
	os.Exit(m.Run())
}

// crmHelper serves n simulated accounts ("acct-0" ...) and a receiver,
// prints their URLs, approves orders at DAEMON_LONG_EVENTS per second and
// exits when stdin closes (the parent test ended).
func crmHelper(n string) {
	accounts, _ := strconv.Atoi(n)
	rate, _ := strconv.ParseFloat(envOr("DAEMON_LONG_EVENTS", "2"), 64)
	sim := crmsim.New(crmsim.Options{Seed: 1})
	accts := make([]*crmsim.Account, accounts)
	for i := range accts {
		name := "acct-" + strconv.Itoa(i)
		accts[i] = sim.AddAccount(crmsim.AccountOptions{Name: name, APIKey: name + "-key"})
	}
	var hs handshakes
	var crm *httptest.Server
	if dir := os.Getenv(tlsDirEnv); dir != "" {
		crm = serveTLS(sim, dir, &hs)
	} else {
		crm = httptest.NewServer(sim)
	}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/handshakes" {
			fmt.Fprintf(w, "full=%d resumed=%d", hs.full.Load(), hs.resumed.Load())
			return
		}
		io.Copy(io.Discard, r.Body)
	}))
	fmt.Printf("CRM=%s RCV=%s\n", crm.URL, rcv.URL)
	if rate > 0 {
		go func() {
			rng := rand.New(rand.NewPCG(1, 2))
			for range time.Tick(time.Duration(float64(time.Second) / rate)) {
				approve(accts[rng.IntN(len(accts))])
			}
		}()
	}
	io.Copy(io.Discard, os.Stdin)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// gcStats reads the collector's CPU time and number of cycles so far, so
// the window's share of CPU spent collecting can be reported, and the heap
// the last collection found live.
func gcStats() (cpu float64, cycles, live uint64) {
	s := []rtmetrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Float64(), s[1].Value.Uint64(), s[2].Value.Uint64()
}

// procStatus reads a "kB" field of /proc/self/status, in MB.
func procStatus(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// profileTo calls write with the file named by the environment variable
// env, when it is set; the file is closed when the test ends.
func profileTo(tb testing.TB, env string, write func(io.Writer) error) {
	tb.Helper()
	path := os.Getenv(env)
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	if err := write(f); err != nil {
		tb.Fatal(err)
	}
}

func BenchmarkAccounts(b *testing.B) {
	b.Cleanup(gcpace.Start()) // as `poller run` does
	t := b
	accounts, err := strconv.Atoi(envOr("DAEMON_LONG_ACCOUNTS", "10000"))
	if err != nil {
		t.Fatal(err)
	}
	schedule := envOr("DAEMON_LONG_SCHEDULE", "@every 1m")
	measure, err := time.ParseDuration(envOr("DAEMON_LONG_DURATION", "3m"))
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	useTLS := os.Getenv("DAEMON_LONG_TLS") == "1"
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(accounts))
	var caFile string
	var dial func(ctx context.Context, network, addr string) (net.Conn, error)
	if useTLS {
		caFile, dial = tlsAccounts(t, dir)
		helper.Env = append(helper.Env, tlsDirEnv+"="+dir)
	}
	helper.Stderr = os.Stderr
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); helper.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var crmURL, rcvURL string
	if _, err := fmt.Sscanf(line, "CRM=%s RCV=%s", &crmURL, &rcvURL); err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}

	var y strings.Builder
	fmt.Fprintf(&y, "state_dir: %s/state\nlisten: 127.0.0.1:0\nadmin_socket: \"\"\nlog: {level: info, format: json}\n", dir)
	fmt.Fprintf(&y, "defaults:\n  schedule: %q\n  webhooks:\n    - url: %s\n      secret: %s\n", schedule, rcvURL, webhookSecret)
	if useTLS {
		fmt.Fprintf(&y, "  ca_file: %s\n", caFile)
	}
	y.WriteString("accounts:\n")
	for i := range accounts {
		name, url := "acct-"+strconv.Itoa(i), ""
		if useTLS {
			url = accountURL(crmURL, name)
		} else {
			url = crmsim.URL(crmURL, name)
		}
		fmt.Fprintf(&y, "  - {name: %s, url: %s, api_key: %s-key}\n", name, url, name)
	}
	path := dir + "/poller.yaml"
	if err := os.WriteFile(path, []byte(y.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	readyCh := make(chan *Ready, 1)
	done := make(chan error, 1)
	// Logs are formatted as in production, then dropped.
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- Run(ctx, cfg, Options{ConfigPath: path, Logger: log, OnReady: func(r *Ready) { readyCh <- r }, Dial: dial})
	}()
	var ready *Ready
	select {
	case ready = <-readyCh:
	case err := <-done:
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	every := config.Account{Schedule: schedule}.Interval()
	warm := every + min(every, maxOffset) + 5*time.Second
	t.Logf("%d accounts on %q: warming up for %v, then measuring for %v", accounts, schedule, warm, measure)
	time.Sleep(warm)

	pollsBy := func(result string) float64 {
		n := 0.0
		for i := range accounts {
			n += testutil.ToFloat64(ready.Metrics.PollsTotal.WithLabelValues("acct-"+strconv.Itoa(i), result))
		}
		return n
	}
	polls := func() float64 { return pollsBy("ok") }
	delivered := func() float64 {
		n := 0.0
		for i := range accounts {
			n += testutil.ToFloat64(ready.Metrics.DeliveriesTotal.WithLabelValues("acct-"+strconv.Itoa(i), "1", "ok"))
		}
		return n
	}
	polls0, deliv0 := polls(), delivered()
	full0, resumed0 := readHandshakes(t, rcvURL)
	profileTo(t, "DAEMON_LONG_CPUPROFILE", pprof.StartCPUProfile)
	gcCPU0, gcCycles0, _ := gcStats()
	cpu0, wall0 := cpuTime(), time.Now()
	maxRSS := 0.0
	for end := wall0.Add(measure); time.Now().Before(end); time.Sleep(time.Second) {
		maxRSS = max(maxRSS, procStatus("VmRSS"))
	}
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	gcCPU, gcCycles, live := gcStats()
	gcCPU, gcCycles = gcCPU-gcCPU0, gcCycles-gcCycles0
	pprof.StopCPUProfile()
	pct := 100 * cpu.Seconds() / wall.Seconds()
	nPolls, nDeliv := polls()-polls0, delivered()-deliv0
	full, resumed := readHandshakes(t, rcvURL)
	full, resumed = full-full0, resumed-resumed0
	_, body := get(t, "http://"+ready.HTTPAddr+"/readyz")

	t.Logf("accounts=%d schedule=%q measured=%v", accounts, schedule, wall.Round(time.Second))
	t.Logf("cpu=%.2f%% of one core (%v cpu time), rss max=%.1f MB, peak (VmHWM)=%.1f MB", pct, cpu.Round(time.Millisecond), maxRSS, procStatus("VmHWM"))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mb := func(n uint64) float64 { return float64(n) / (1 << 20) }
	t.Logf("go heap in use=%.1f MB, idle and not returned=%.1f MB, stacks=%.1f MB, runtime metadata=%.1f MB, runtime sys=%.1f MB, goroutines=%d",
		mb(ms.HeapInuse), mb(ms.HeapIdle-ms.HeapReleased), mb(ms.StackSys), mb(ms.MSpanSys+ms.MCacheSys+ms.BuckHashSys+ms.GCSys+ms.OtherSys), mb(ms.Sys), runtime.NumGoroutine())
	// The runtime's GC CPU estimate counts its workers' time on every core
	// as busy, so it is an upper bound of what collecting cost.
	t.Logf("garbage collector: %d cycles in the window, at most %.2f%% of one core (live heap after the last: %.1f MB)",
		gcCycles, 100*gcCPU/wall.Seconds(), mb(live))
	t.Logf("polls ok=%.0f (%.1f/s), failed polls since the start=%.0f, deliveries ok=%.0f, readyz=%q",
		nPolls, nPolls/wall.Seconds(), pollsBy("error"), nDeliv, trim(strings.TrimSpace(body), 200))

	if useTLS {
		t.Logf("tls handshakes: full=%.0f (%.2f/s, %.2f%% of polls), resumed=%.0f (%.2f/s)",
			full, full/wall.Seconds(), 100*full/max(nPolls, 1), resumed, resumed/wall.Seconds())
		b.ReportMetric(100*full/max(nPolls, 1), "full-handshakes/100polls")
	}
	profileTo(t, "DAEMON_LONG_HEAPPROFILE", pprof.WriteHeapProfile)

	// Every account polls once an interval: a window of k whole intervals
	// holds at least k polls of each (offsets span only part of an
	// interval, so a window that is not a multiple of it is uneven).
	if least := float64(accounts) * math.Floor(wall.Seconds()/every.Seconds()); nPolls < 0.95*least {
		t.Errorf("only %.0f polls in the window, at least %.0f expected: accounts are falling behind", nPolls, least)
	}
	b.ReportMetric(pct, "cpu%")
	b.ReportMetric(maxRSS, "rss-MB")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
}
