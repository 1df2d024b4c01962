// Package deliver sends outbox events to webhooks the way a RetailCRM
// trigger's "HTTP request" action would (docs/REFERENCE.md, "Requests to
// the webhooks"): it renders the request for the webhook's format, signs it
// per the Standard Webhooks spec, sends one attempt at a time (Send), and
// runs the Dispatcher that keeps each order's events in order, retries on a
// durable schedule and dead-letters what cannot be delivered.
//
// Scheduling: the retry schedule lives in the store (its due
// index), not in memory. The Dispatcher's one loop goroutine asks the
// scheduler what is due; each attempt runs in a goroutine of its own and
// writes its outcome in one transaction. An event waiting for a retry is
// only a key in the store: it takes no memory and no slot, and a failing
// order holds back only its own later events. Memory is bounded by
// O(queues) small structs (one per configured webhook of each account:
// settings, what is in flight, the time its earliest item is due) plus
// O(attempts in flight), each holding one event; attempts in flight are at
// most each webhook's concurrency (plus as many read ahead) and
// Options.MaxInFlight over all of them. Idle accounts cost no goroutine and
// no work until notified. When a receiver answers again after an outage
// (five failures in a row over ten seconds or more), its webhook's waiting
// retries become due at once, so a backlog drains at full speed instead
// of at the pace of its backoff.
//
// Time: the schedule runs on a clock.Steady time, which never goes back,
// so a step of the wall clock holds no retry and no new event back for
// its length; a due key further ahead than the longest wait the config
// allows (maxWait) can only come from before a backward step made while
// the daemon was stopped (or a longer max_age), and is due at once.
package deliver
