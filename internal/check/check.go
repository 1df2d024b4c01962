// Package check backs `poller check`: a summary of a loaded config and, with
// Online, a live check of every account against its RetailCRM API (the key
// is accepted, every configured status code exists, every configured site is
// visible to the key, the account's time zone is known and agrees with
// time_zone). Accounts are checked concurrently and reported in config
// order, one line each, so an operator sees all problems at once:
//
//	ok    NAME: key accepted; sites: SITES (HOW); statuses: CODES; time zone: ZONE (WHOSE)
//	FAIL  NAME: REASON
//
// SITES are the configured sites, or the sites the key sees when none are
// configured. HOW says where the key's sites came from, since
// /api/credentials does not always list them:
//
//	listed in /api/credentials           sitesAvailable was in the answer
//	siteAccess access_full, ...          no list, but the key sees every
//	                                     site (SITES is then "every site"
//	                                     when none are configured)
//	from /api/v5/reference/sites, ...    no list and no full access: the
//	                                     sites reference, which shows the
//	                                     key's sites
//
// A configured site the key does not see fails the account with
// "sites not available to the API key: S (the key sees: ...; HOW)".
package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/retailcrm-poller/retailcrm-poller/internal/config"
	"github.com/retailcrm-poller/retailcrm-poller/internal/retailcrm"
)

// Errors, compared with errors.Is.
var (
	// ErrFailed: at least one account failed its online check.
	ErrFailed = errors.New("check: some accounts failed")
	// ErrMissingStatus: a configured status code does not exist in the account.
	ErrMissingStatus = errors.New("status codes not found in the account")
	// ErrMissingSite: a configured site is not visible to the API key.
	ErrMissingSite = errors.New("sites not available to the API key")
	// ErrZoneMismatch: time_zone differs from the account's own zone.
	ErrZoneMismatch = errors.New("time_zone differs from the account's")
	// ErrZoneUnknown: the account's zone cannot be read and time_zone is
	// not set.
	ErrZoneUnknown = errors.New("the account's time zone cannot be read")
)

// Options tune the online check.
type Options struct {
	UserAgent   string
	Timeout     time.Duration // per account; default 30s
	Concurrency int           // accounts checked at once; default 8
	Logger      *slog.Logger  // API client logger; nil discards
}

// Summary describes a valid config in one line.
func Summary(cfg *config.Config) string {
	hooks := 0
	for _, a := range cfg.Accounts {
		hooks += len(a.Webhooks)
	}
	return fmt.Sprintf("ok  %s: %s, %s", cfg.Path, plural(len(cfg.Accounts), "account"), plural(hooks, "webhook"))
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Online checks every account and writes one line per account to w:
// "ok    NAME: ..." or "FAIL  NAME: reason". It returns ErrFailed if any
// account failed.
func Online(ctx context.Context, cfg *config.Config, w io.Writer, opts Options) error {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	results := make([]error, len(cfg.Accounts))
	details := make([]string, len(cfg.Accounts))
	sem := make(chan struct{}, opts.Concurrency)
	var wg sync.WaitGroup
	for i, a := range cfg.Accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			details[i], results[i] = Account(ctx, a, opts)
		}()
	}
	wg.Wait()
	failed := 0
	for i, a := range cfg.Accounts {
		if results[i] != nil {
			failed++
			fmt.Fprintf(w, "FAIL  %s: %v\n", a.Name, results[i])
			continue
		}
		fmt.Fprintf(w, "ok    %s: %s\n", a.Name, details[i])
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d", ErrFailed, failed, len(cfg.Accounts))
	}
	return nil
}

// Account checks one account and, on success, describes what it found.
func Account(ctx context.Context, a config.Account, opts Options) (string, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	co := retailcrm.AccountOptions(a)
	co.MaxRetries, co.Logger, co.UserAgent = 2, log.With("account", a.Name), opts.UserAgent
	c, err := retailcrm.New(co)
	if err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	cred, err := c.Credentials(ctx)
	if err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	seen, err := keySites(ctx, c, cred)
	if err != nil {
		return "", err
	}
	if missing := notIn(a.Sites, seen.sites); !seen.all && len(missing) > 0 {
		return "", fmt.Errorf("%w: %s (the key sees: %s; %s)", ErrMissingSite,
			strings.Join(missing, ", "), orNone(seen.sites), seen.how)
	}
	statuses, err := c.Statuses(ctx)
	if err != nil {
		return "", fmt.Errorf("statuses: %w", err)
	}
	var missing []string
	for _, code := range a.Statuses {
		if _, ok := statuses[code]; !ok {
			missing = append(missing, code)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%w: %s", ErrMissingStatus, strings.Join(missing, ", "))
	}
	zone, err := accountZone(ctx, c, a, time.Now())
	if err != nil {
		return "", err
	}
	sites := orNone(a.Sites)
	switch {
	case len(a.Sites) > 0:
	case seen.all:
		sites = "every site"
	default:
		sites = orNone(seen.sites)
	}
	return fmt.Sprintf("key accepted; sites: %s (%s); statuses: %s; %s",
		sites, seen.how, strings.Join(a.Statuses, ", "), zone), nil
}

// visibleSites are the sites an API key sees, and how that was found out.
type visibleSites struct {
	sites []string
	all   bool // every site of the account
	how   string
}

// keySites finds the sites the key sees: sitesAvailable when the
// credentials answer lists them (it does not always: api-client-php's
// published sample has none); every site with siteAccess access_full;
// otherwise the sites reference, which lists the key's sites.
func keySites(ctx context.Context, c *retailcrm.Client, cred retailcrm.Credentials) (visibleSites, error) {
	switch {
	case cred.SitesListed:
		return visibleSites{sites: cred.SitesAvailable, how: "listed in /api/credentials"}, nil
	case cred.SiteAccess == retailcrm.AccessFull:
		return visibleSites{all: true, how: "siteAccess access_full, /api/credentials lists no sites"}, nil
	}
	ref, err := c.Sites(ctx)
	if err != nil {
		return visibleSites{}, fmt.Errorf("sites: %w", err)
	}
	return visibleSites{sites: slices.Sorted(maps.Keys(ref)),
		how: "from /api/v5/reference/sites, /api/credentials lists no sites"}, nil
}

// notIn returns the elements of want that are absent from have.
func notIn(want, have []string) []string {
	var out []string
	for _, s := range want {
		if !slices.Contains(have, s) {
			out = append(out, s)
		}
	}
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
