package config

import (
	"bytes"
	"maps"
	"slices"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/condition"
	"github.com/retailcrm-poller/retailcrm-poller/internal/tmpl"
)

// Equal reports whether a and o configure the same account: a reload
// restarts an account only when this is false. Secrets compare by value (a
// new API key must take effect), templates by source, time zones by name.
// A test fails when a field of Account is left out here.
func (a Account) Equal(o Account) bool {
	return a.Name == o.Name &&
		a.URL == o.URL &&
		a.URLAsWritten == o.URLAsWritten &&
		a.APIKey == o.APIKey &&
		slices.Equal(a.Statuses, o.Statuses) &&
		slices.Equal(a.Sites, o.Sites) &&
		a.Schedule == o.Schedule &&
		a.StartFrom == o.StartFrom &&
		a.StartTime.Equal(o.StartTime) &&
		sameLocation(a.TimeZone, o.TimeZone) &&
		a.OnCreate == o.OnCreate &&
		a.SkipOwnChanges == o.SkipOwnChanges &&
		a.RateLimit == o.RateLimit &&
		a.CAFile == o.CAFile &&
		bytes.Equal(a.CA, o.CA) &&
		a.LookBack == o.LookBack &&
		a.LookBackTime == o.LookBackTime &&
		a.PageBudget == o.PageBudget &&
		a.Timeout == o.Timeout &&
		a.Reconcile == o.Reconcile &&
		slices.EqualFunc(a.Webhooks, o.Webhooks, Webhook.Equal)
}

// Equal reports whether w and o configure the same webhook, by the same
// rules as Account.Equal.
func (w Webhook) Equal(o Webhook) bool {
	return w.Name == o.Name &&
		w.URL == o.URL &&
		w.URLAsWritten == o.URLAsWritten &&
		w.Method == o.Method &&
		w.Format == o.Format &&
		slices.EqualFunc(w.Params, o.Params, func(p, q Param) bool {
			return p.Name == q.Name && sameTemplate(p.Value, q.Value)
		}) &&
		sameTemplate(w.Body, o.Body) &&
		maps.Equal(w.Headers, o.Headers) &&
		slices.Equal(w.Secrets, o.Secrets) &&
		w.Timeout == o.Timeout &&
		w.SuccessBody == o.SuccessBody &&
		w.Retry == o.Retry &&
		w.Concurrency == o.Concurrency &&
		sameCondition(w.When, o.When)
}

// Equal reports whether a and o send the same alerts.
func (a Alerts) Equal(o Alerts) bool {
	if a.Email == nil || o.Email == nil {
		return a.Email == o.Email
	}
	e, f := a.Email, o.Email
	return e.SMTP == f.SMTP &&
		e.Username == f.Username &&
		e.Password == f.Password &&
		e.From == f.From &&
		slices.Equal(e.To, f.To) &&
		e.StartTLS == f.StartTLS
}

func sameTemplate(a, b *tmpl.Template) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Source() == b.Source()
}

func sameCondition(a, b *condition.Condition) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.String() == b.String()
}

func sameLocation(a, b *time.Location) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.String() == b.String()
}
