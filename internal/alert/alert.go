// Package alert mails the operator when events are dead-lettered, the way
// payment gateways mail a merchant after failed notifications. Mails are
// rate-limited per account: the first dead letter goes out at once, the
// ones that follow within the interval are summarised in one mail, so a
// storm of dead letters sends a bounded number of messages.
package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/smtp"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// Errors, compared with errors.Is.
var (
	// ErrNoStartTLS: start_tls is required but the server does not offer it.
	ErrNoStartTLS = errors.New("alert: SMTP server does not offer STARTTLS")
	// ErrClosed: the mailer was closed.
	ErrClosed = errors.New("alert: mailer closed")
)

// Defaults for Options.
const (
	DefaultInterval = time.Minute
	DefaultTimeout  = 30 * time.Second
	maxListed       = 50 // dead letters detailed in one mail; the rest are counted
)

// Options tune a Mailer. Zero values pick the defaults.
type Options struct {
	Interval  time.Duration // least time between two mails about one account (default 1m)
	Timeout   time.Duration // one SMTP session, dial to QUIT (default 30s)
	Hostname  string        // EHLO name (default os.Hostname)
	TLSConfig *tls.Config   // for STARTTLS and port 465; nil: verify against the SMTP host name
}

// Mailer is an alerter (deliver.Alerter) that sends e-mail over SMTP.
type Mailer struct {
	cfg  config.Email
	log  *slog.Logger
	opts Options

	mu       sync.Mutex
	closed   bool
	accounts map[string]*pending
	sending  sync.WaitGroup
}

// pending is what waits to be mailed about one account.
type pending struct {
	items    []store.Item
	dropped  int         // dead letters beyond maxListed, only counted
	lastSent time.Time   // start of the last mail
	timer    *time.Timer // non-nil while a mail is scheduled
}

// New returns a Mailer for cfg. It sends nothing until DeadLetter is called.
func New(cfg config.Email, log *slog.Logger, opts Options) *Mailer {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
		if opts.Hostname == "" {
			opts.Hostname = "localhost"
		}
	}
	return &Mailer{cfg: cfg, log: log, opts: opts, accounts: make(map[string]*pending)}
}

// DeadLetter queues a mail about it and returns at once: a mail goes out now
// when none went out about the account within the interval, otherwise at the
// end of the interval, summarising everything queued meanwhile.
func (m *Mailer) DeadLetter(_ context.Context, it store.Item) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		m.log.Warn("dead-letter alert after shutdown not mailed", "account", it.Account, "event_id", it.Event.ID)
		return
	}
	p := m.accounts[it.Account]
	if p == nil {
		p = &pending{}
		m.accounts[it.Account] = p
	}
	if len(p.items) < maxListed {
		p.items = append(p.items, it)
	} else {
		p.dropped++
	}
	if p.timer != nil {
		return
	}
	wait := max(time.Until(p.lastSent.Add(m.opts.Interval)), 0)
	account := it.Account
	m.sending.Add(1) // under mu, before Close can set closed and Wait
	p.timer = time.AfterFunc(wait, func() {
		defer m.sending.Done()
		m.flush(account)
	})
}

// flush mails what is queued for account.
func (m *Mailer) flush(account string) {
	m.mu.Lock()
	p := m.accounts[account]
	if p == nil || len(p.items) == 0 {
		m.mu.Unlock()
		return
	}
	items, dropped := p.items, p.dropped
	p.items, p.dropped, p.timer = nil, 0, nil
	p.lastSent = time.Now()
	m.mu.Unlock()

	msg := m.message(account, items, dropped)
	if err := m.send(context.Background(), msg); err != nil {
		m.log.Error("cannot mail dead-letter alert", "account", account, "events", len(items)+dropped, "error", err)
		return
	}
	m.log.Info("mailed dead-letter alert", "account", account, "events", len(items)+dropped)
}

// Close mails everything still queued, without waiting for the interval,
// and waits for mails in progress until ctx ends.
func (m *Mailer) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	var due []string
	for a, p := range m.accounts {
		if p.timer != nil && p.timer.Stop() {
			due = append(due, a)
		}
	}
	m.mu.Unlock()
	for _, a := range due {
		go func() { // takes over the stopped timer's count
			defer m.sending.Done()
			m.flush(a)
		}()
	}
	done := make(chan struct{})
	go func() {
		m.sending.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("alert: close: %w", context.Cause(ctx))
	}
}

// summarySubject is the subject of a mail about several dead letters.
func summarySubject(account string, n int) string {
	return fmt.Sprintf("retailcrm-poller: %d events dead-lettered (account %s)", n, account)
}

// message renders an RFC 5322 text mail. It never carries secrets: only
// ids, counts, statuses and the recorded error.
func (m *Mailer) message(account string, items []store.Item, dropped int) []byte {
	subject := summarySubject(account, len(items)+dropped)
	if len(items) == 1 && dropped == 0 {
		subject = fmt.Sprintf("retailcrm-poller: event %s dead-lettered", items[0].Event.ID)
	}
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", m.cfg.From)
	hdr("To", strings.Join(m.cfg.To, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", subject))
	hdr("Date", time.Now().Format(time.RFC1123Z))
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")

	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteString("\r\n")
	}
	line("retailcrm-poller gave up delivering %d event(s) of account %s.", len(items)+dropped, account)
	line("They are kept as dead letters; after fixing the receiver, send them again with")
	line("  poller dlq retry -config FILE -account %s [EVENT_ID...]", account)
	for _, it := range items {
		line("")
		line("Event:       %s (%s)", it.Event.ID, it.Event.Type)
		line("Account:     %s", it.Account)
		line("Webhook:     %s", it.Webhook)
		line("Order:       %d", it.OrderID)
		line("Attempts:    %d", it.Attempts)
		line("Reason:      %s", it.DeadReason)
		if it.LastStatus != 0 {
			line("Last status: %d", it.LastStatus)
		}
		if it.LastError != "" {
			line("Last error:  %s", oneLine(it.LastError))
		}
		if !it.FirstAttempt.IsZero() {
			line("First try:   %s", it.FirstAttempt.UTC().Format(time.RFC3339))
		}
		if !it.DeadAt.IsZero() {
			line("Given up:    %s", it.DeadAt.UTC().Format(time.RFC3339))
		}
	}
	if dropped > 0 {
		line("")
		line("... and %d more; see `poller dlq list`.", dropped)
	}
	return b.Bytes()
}

// oneLine keeps an error from breaking the mail's line structure.
func oneLine(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

// send runs one SMTP session: STARTTLS when offered (required with
// start_tls), implicit TLS on port 465, AUTH PLAIN when a username is set.
func (m *Mailer) send(ctx context.Context, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	host, port, err := net.SplitHostPort(m.cfg.SMTP)
	if err != nil {
		return fmt.Errorf("alert: smtp address: %w", err)
	}
	tlsCfg := m.opts.TLSConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{ServerName: host}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.cfg.SMTP)
	if err != nil {
		return fmt.Errorf("alert: dial: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if port == "465" {
		conn = tls.Client(conn, tlsCfg)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("alert: smtp greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(m.opts.Hostname); err != nil {
		return fmt.Errorf("alert: EHLO: %w", err)
	}
	if _, isTLS := conn.(*tls.Conn); !isTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsCfg); err != nil {
				return fmt.Errorf("alert: STARTTLS: %w", err)
			}
		} else if m.cfg.StartTLS {
			return ErrNoStartTLS
		}
	}
	if m.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password.Reveal(), host)); err != nil {
			return fmt.Errorf("alert: AUTH: %w", err)
		}
	}
	if err := c.Mail(m.cfg.From); err != nil {
		return fmt.Errorf("alert: MAIL FROM: %w", err)
	}
	for _, to := range m.cfg.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("alert: RCPT TO %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("alert: DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("alert: DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("alert: DATA: %w", err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("alert: QUIT: %w", err)
	}
	return nil
}
