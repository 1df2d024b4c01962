package alert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/event"
	"github.com/retailcrm-poller/retailcrm-poller/internal/store"
)

// received is one message the test server accepted.
type received struct {
	from string
	to   []string
	user string // authenticated username, "" without AUTH
	data string
}

// mailbox is an in-memory go-smtp backend.
type mailbox struct {
	user, pass string // required credentials; "" accepts anonymous
	mu         sync.Mutex
	msgs       []received
	arrived    chan struct{}
}

func (b *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{box: b}, nil }

func (b *mailbox) messages() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.msgs...)
}

type session struct {
	box *mailbox
	cur received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.box.user || pass != s.box.pass {
			return errors.New("bad credentials")
		}
		s.cur.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.box.user != "" && s.cur.user == "" {
		return smtp.ErrAuthRequired
	}
	s.cur.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = string(b)
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, s.cur)
	s.box.mu.Unlock()
	s.box.arrived <- struct{}{}
	return nil
}

func (s *session) Reset()        { s.cur = received{user: s.cur.user} }
func (s *session) Logout() error { return nil }

// startSMTP runs a real SMTP server on 127.0.0.1:0 for the test.
func startSMTP(t *testing.T, user, pass string) (*mailbox, string) {
	t.Helper()
	box := &mailbox{user: user, pass: pass, arrived: make(chan struct{}, 1000)}
	srv := smtp.NewServer(box)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return box, l.Addr().String()
}

func item(account string, n int) store.Item {
	return store.Item{
		Seq: uint64(n), Account: account, Webhook: "1",
		Event:   event.Event{ID: event.ID(account, int64(7000+n)), Type: event.StatusChanged, Account: account},
		OrderID: int64(100 + n), Attempts: 12, LastStatus: 503, LastError: "deliver: receiver did not answer 2xx: 503",
		DeadReason: "max_attempts", DeadAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
	}
}

func wait(t *testing.T, box *mailbox, n int) []received {
	t.Helper()
	for range n {
		select {
		case <-box.arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d messages, want %d", len(box.messages()), n)
		}
	}
	return box.messages()
}

func TestDeadLetterMail(t *testing.T) {
	const pass = "s3cret-smtp-pass"
	tests := []struct {
		name       string
		user, pass string
	}{
		{"anonymous", "", ""},
		{"auth plain", "alerts", pass},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			box, addr := startSMTP(t, tc.user, tc.pass)
			m := New(config.Email{SMTP: addr, Username: tc.user, Password: config.Secret(tc.pass),
				From: "poller@example.com", To: []string{"ops@example.com", "dev@example.com"}},
				slog.New(slog.DiscardHandler), Options{Hostname: "test"})
			m.DeadLetter(t.Context(), item("ghana", 1))
			msgs := wait(t, box, 1)
			got := msgs[0]
			if got.from != "poller@example.com" || strings.Join(got.to, ",") != "ops@example.com,dev@example.com" || got.user != tc.user {
				t.Fatalf("envelope from=%q to=%v user=%q", got.from, got.to, got.user)
			}
			msg, err := mail.ReadMessage(strings.NewReader(got.data))
			if err != nil {
				t.Fatal(err)
			}
			if s := msg.Header.Get("Subject"); s != "retailcrm-poller: event ghana-7001 dead-lettered" {
				t.Errorf("subject %q", s)
			}
			body, _ := io.ReadAll(msg.Body)
			for _, want := range []string{"ghana-7001", "Account:     ghana", "Webhook:     1", "Attempts:    12",
				"Last status: 503", "max_attempts", "poller dlq retry"} {
				if !strings.Contains(string(body), want) {
					t.Errorf("body lacks %q:\n%s", want, body)
				}
			}
			if strings.Contains(got.data, pass) {
				t.Error("the mail carries the SMTP password")
			}
			if err := m.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A storm of dead letters yields one mail at once and one summary per
// interval, not one mail each.
func TestStormIsAggregated(t *testing.T) {
	box, addr := startSMTP(t, "", "")
	m := New(config.Email{SMTP: addr, From: "p@example.com", To: []string{"ops@example.com"}},
		slog.New(slog.DiscardHandler), Options{Interval: 300 * time.Millisecond})
	const n = 80
	m.DeadLetter(t.Context(), item("ghana", 0))
	wait(t, box, 1)
	for i := 1; i < n; i++ {
		m.DeadLetter(t.Context(), item("ghana", i))
	}
	m.DeadLetter(t.Context(), item("kenya", 1)) // another account is not held back
	wait(t, box, 2)
	time.Sleep(500 * time.Millisecond) // longer than the interval: nothing else may arrive
	msgs := box.messages()
	if len(msgs) != 3 {
		t.Fatalf("%d mails for %d dead letters, want 3 (first, summary, other account)", len(msgs), n+1)
	}
	var summary string
	for _, r := range msgs {
		if strings.Contains(r.data, "79 events dead-lettered (account ghana)") {
			summary = r.data
		}
	}
	if summary == "" {
		t.Fatalf("no summary mail among:\n%v", msgs)
	}
	if !strings.Contains(summary, "ghana-7050") || !strings.Contains(summary, fmt.Sprintf("and %d more", n-1-maxListed)) {
		t.Errorf("summary lacks details or the overflow count:\n%s", summary)
	}
	if err := m.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Close sends what waits for the interval instead of dropping it.
func TestCloseFlushes(t *testing.T) {
	box, addr := startSMTP(t, "", "")
	m := New(config.Email{SMTP: addr, From: "p@example.com", To: []string{"ops@example.com"}},
		slog.New(slog.DiscardHandler), Options{Interval: time.Hour})
	m.DeadLetter(t.Context(), item("ghana", 1))
	wait(t, box, 1)
	m.DeadLetter(t.Context(), item("ghana", 2))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if msgs := box.messages(); len(msgs) != 2 || !strings.Contains(msgs[1].data, "ghana-7002") {
		t.Fatalf("after Close: %d mails", len(msgs))
	}
}

func TestStartTLSRequired(t *testing.T) {
	_, addr := startSMTP(t, "", "")
	m := New(config.Email{SMTP: addr, From: "p@example.com", To: []string{"ops@example.com"}, StartTLS: true},
		slog.New(slog.DiscardHandler), Options{})
	err := m.send(t.Context(), m.message("ghana", []store.Item{item("ghana", 1)}, 0))
	if !errors.Is(err, ErrNoStartTLS) {
		t.Fatalf("err = %v, want ErrNoStartTLS", err)
	}
}
