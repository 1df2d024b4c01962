// Package daemon runs the poller: it loads the config, opens the store,
// schedules one poll per account with cron, runs delivery, serves metrics,
// health and the admin socket, reloads the config on request, talks to
// systemd (readiness, watchdog) and shuts down gracefully when its context
// ends.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/retailcrm-poller/retailcrm-poller/internal/admin"
	"github.com/retailcrm-poller/retailcrm-poller/internal/alert"
	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/deliver"
	"github.com/retailcrm-poller/retailcrm-poller/internal/logging"
	"github.com/retailcrm-poller/retailcrm-poller/internal/metrics"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
	"github.com/retailcrm-poller/retailcrm-poller/internal/version"
)

// Options configure Run.
type Options struct {
	ConfigPath string       // the file the config came from, read again on each reload
	Logger     *slog.Logger // nil: built from the config's log section, to stderr
	Reload     <-chan struct{}
	OnReady    func(*Ready) // called once everything is up (tests, demo); must not block
	// Dial, when set, opens the API connections (benchmarks: many account
	// host names served by one simulator); nil dials the URL's host.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Ready describes the running daemon.
type Ready struct {
	HTTPAddr    string // actual address of the metrics/health listener; "" when disabled
	AdminSocket string // "" when disabled
	Store       *store.Store
	Metrics     *metrics.Metrics
}

// gaugeEvery is how often the outbox and dead-letter gauges are refreshed
// from the store. Delivery sets them at each change; this only catches
// what changed elsewhere (dlq commands, replays).
const gaugeEvery = time.Minute

// stopGrace bounds the wait for polls after they were cancelled.
const stopGrace = 2 * time.Second

// daemon is the state of one Run.
type daemon struct {
	path       string
	log        *slog.Logger
	st         *store.Store
	m          *metrics.Metrics
	disp       *deliver.Dispatcher
	stopDisp   context.CancelFunc // ends delivery's context after Shutdown
	slots      *slots
	httpSrv    *http.Server  // nil without listen
	admin      *admin.Server // nil without admin_socket
	mailer     *alert.Mailer // nil without alerts.email
	crm        pools         // the accounts' API connection pools
	ready      Ready
	scheduling []*account // prepared at start, scheduled by serve

	mu       sync.Mutex
	cfg      *config.Config
	accounts map[string]*account
	runLocks map[string]*sync.Mutex // per account name, across reloads: one poll at a time
}

// Run runs the daemon with cfg, loaded and validated by the caller from
// opts.ConfigPath, until ctx ends, then shuts down gracefully and returns
// nil. Errors are returned for failures to start (state file locked,
// listen address taken), and nothing is left running then.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	d, err := start(ctx, cfg, opts)
	if err != nil {
		return err
	}
	d.serve(ctx, opts)
	return nil
}

// start opens the state file, starts delivery, prepares the accounts'
// pollers and opens the listeners. When a step fails, the steps before it
// are undone: the store is closed and the listeners too, so a retry finds
// the state file free. The undo steps use the local d, never the result,
// which is nil once an error is returned.
func start(ctx context.Context, cfg *config.Config, opts Options) (_ *daemon, err error) {
	d := &daemon{
		path:     opts.ConfigPath,
		log:      opts.Logger,
		cfg:      cfg,
		accounts: map[string]*account{},
		runLocks: map[string]*sync.Mutex{},
		m:        metrics.New(),
		crm:      pools{dial: opts.Dial},
	}
	if d.log == nil {
		d.log = logging.New(cfg.Log, os.Stderr)
	}
	d.log.Info("starting", "version", version.String(), "config", cfg.Path, "accounts", len(cfg.Accounts))
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	dbPath := filepath.Join(cfg.StateDir, store.FileName)
	d.st, err = store.Open(dbPath, store.Options{Timeout: time.Second})
	if errors.Is(err, store.ErrTimeout) {
		return nil, fmt.Errorf("daemon: another poller is running with %s: %w", dbPath, err)
	}
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	undo = append(undo, func() { d.st.Close() })
	d.m.ConfigLastReloadOK.Set(1)

	dopts := deliver.Options{UserAgent: version.UserAgent()}
	if cfg.Alerts.Email != nil {
		d.mailer = alert.New(*cfg.Alerts.Email, d.log.With("component", "alert"), alert.Options{})
		dopts.Alerter = d.mailer
	}
	d.removedAccounts(cfg, nil, time.Now())
	d.disp = deliver.New(d.st, d.m, d.log, dopts)
	d.disp.Update(cfg.Accounts)
	dispCtx, stopDisp := context.WithCancel(context.WithoutCancel(ctx))
	d.stopDisp = stopDisp
	d.disp.Start(dispCtx)
	undo = append(undo, func() {
		sctx, cancel := context.WithTimeout(context.Background(), stopGrace)
		defer cancel()
		_ = d.disp.Shutdown(sctx)
		stopDisp()
	})

	cl := logging.CronLogger(d.log)
	d.slots = newSlots(cron.New(
		cron.WithLocation(time.UTC),
		cron.WithChain(cron.SkipIfStillRunning(cl), cron.Recover(cl)),
		cron.WithLogger(cl),
	), d.log)
	if d.scheduling, err = d.prepare(cfg.Accounts); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}

	d.ready = Ready{AdminSocket: cfg.AdminSocket, Store: d.st, Metrics: d.m}
	if cfg.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("daemon: listen: %w", err)
		}
		d.ready.HTTPAddr = ln.Addr().String()
		d.httpSrv = &http.Server{
			Handler:           d.httpHandler(),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
		}
		go func() {
			if err := d.httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("http server stopped", "error", err)
			}
		}()
		// The listener too: Serve, in its goroutine, may not have taken it
		// yet, and a retry must find the port free when start returns.
		undo = append(undo, func() { d.httpSrv.Close(); ln.Close() })
		d.log.Info("serving metrics and health", "addr", d.ready.HTTPAddr)
	}
	if cfg.AdminSocket != "" {
		d.admin = admin.NewServer(d.st, cfg, admin.Hooks{Changed: d.queuesChanged, Runtime: d.runtime}, d.log)
		if err := d.admin.Start(cfg.AdminSocket); err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
	}
	return d, nil
}

// serve schedules the accounts and runs until ctx ends, reloading the
// config on request; then it shuts down. Polls run under a context of
// their own, cancelled only when the shutdown bound has passed.
func (d *daemon) serve(ctx context.Context, opts Options) {
	polls, cancelPolls := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPolls()
	d.schedule(polls, d.scheduling, time.Now())
	d.scheduling = nil
	d.refreshGauges()
	d.slots.cron.Start()

	bgCtx, stopBackground := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() { d.gaugeLoop(bgCtx) })
	bg.Go(func() { d.watchdog(bgCtx) })
	notify(d.log, sdReady)
	d.log.Info("ready", "accounts", len(d.cfg.Accounts))
	if opts.OnReady != nil {
		ready := d.ready
		opts.OnReady(&ready)
	}

	removedTick := time.NewTicker(removedEvery)
	defer removedTick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-opts.Reload:
			d.reload(polls)
		case now := <-removedTick.C:
			d.mu.Lock()
			cfg := d.cfg
			d.mu.Unlock()
			d.removedAccounts(cfg, cfg, now)
		}
	}
	stopBackground()
	bg.Wait()
	d.shutdown(cancelPolls)
}

// shutdown stops polling and delivery within the configured bound: cron
// stops scheduling and running polls get until the bound to commit (then
// they are cancelled); delivery finishes or abandons its in-flight
// requests by the same deadline. Then the listeners and the store close.
func (d *daemon) shutdown(cancelPolls context.CancelFunc) {
	notify(d.log, sdStopping)
	d.mu.Lock()
	bound := d.cfg.ShutdownTimeout
	d.mu.Unlock()
	d.log.Info("shutting down", "timeout", bound.String())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := d.disp.Shutdown(ctx); err != nil {
			d.log.Warn("delivery did not finish within the shutdown timeout", "error", err)
		}
		d.stopDisp()
		if d.mailer != nil {
			if err := d.mailer.Close(ctx); err != nil {
				d.log.Warn("dead-letter alerts not all mailed before the shutdown timeout", "error", err)
			}
		}
	})
	if !d.slots.stop(ctx, cancelPolls, stopGrace) {
		d.log.Error("polls did not stop after cancellation")
	}
	wg.Wait()

	closeCtx, cancelClose := context.WithTimeout(context.Background(), stopGrace)
	defer cancelClose()
	if d.httpSrv != nil {
		if err := d.httpSrv.Shutdown(closeCtx); err != nil {
			d.log.Warn("http server shutdown", "error", err)
		}
	}
	if d.admin != nil {
		if err := d.admin.Shutdown(closeCtx); err != nil {
			d.log.Warn("admin socket shutdown", "error", err)
		}
	}
	if err := d.st.RecordLastSuccess(d.lastSuccesses()); err != nil {
		d.log.Warn("recording the last successful polls", "error", err)
	}
	if err := d.st.Close(); err != nil {
		d.log.Error("closing the store", "error", err)
	}
	d.log.Info("stopped")
}
