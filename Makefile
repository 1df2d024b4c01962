# retailcrm-poller: build, test, install, package.
#
#   make                 build bin/poller
#   make test            the README's test command (vet, staticcheck, race tests)
#   make ci              what CI runs (.ci/run)
#   make install         binary, systemd unit, example config, config schema (PREFIX, DESTDIR)
#   make deb             a .deb with nfpm (downloaded through the Go module proxy)

PREFIX     ?= /usr
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR    ?= /lib/systemd/system
DATADIR    ?= $(PREFIX)/share/retailcrm-poller
DESTDIR    ?=
# The version internal/version derives from the build info of a plain
# `go build`: the release tag on HEAD or 12 hex digits of the commit, with
# -dirty when `git status` shows changes. internal/version's
# TestOneVersion checks that the two agree.
VERSION    ?= $(shell v=$$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null || git rev-parse --short=12 HEAD 2>/dev/null) && \
		if [ -n "$$(git status --porcelain 2>/dev/null)" ]; then echo $$v-dirty; else echo $$v; fi || echo dev)
# Debian versions must start with a digit: v1.2.3 -> 1.2.3, no tag -> 0.0.0~gitHASH.
DEB_VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo $${v\#v} || echo 0.0.0~git$$(git rev-parse --short HEAD 2>/dev/null || echo unknown))
NFPM       ?= go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

GO_LDFLAGS := -s -w -X github.com/retailcrm-poller/retailcrm-poller/internal/version.Version=$(VERSION)

.PHONY: all build version test ci e2e e2e-long verify-unit install uninstall deb clean

all: build

build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(GO_LDFLAGS)' -o bin/poller ./cmd/poller

version:
	@echo $(VERSION)

test:
	go vet ./... && go tool staticcheck ./... && go test -race ./... && (cd contrib && go vet ./... && go tool staticcheck ./... && go test ./...)

ci:
	bash .ci/run

e2e:
	go test -race -count=1 ./e2e/

e2e-long:
	E2E_LONG=1 go test -race -count=1 -timeout 30m ./e2e/

verify-unit:
	bash systemd/verify-unit.sh

# The unit names /usr/bin/poller; another BINDIR is written into the copy.
install: build
	install -Dm0755 bin/poller $(DESTDIR)$(BINDIR)/poller
	install -d -m0755 $(DESTDIR)$(UNITDIR)
	sed 's#/usr/bin/poller#$(BINDIR)/poller#g' systemd/retailcrm-poller.service \
		>$(DESTDIR)$(UNITDIR)/retailcrm-poller.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/retailcrm-poller.service
	sed 's#/usr/bin/poller#$(BINDIR)/poller#g' systemd/retailcrm-poller-backup.service \
		>$(DESTDIR)$(UNITDIR)/retailcrm-poller-backup.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/retailcrm-poller-backup.service
	install -m0644 systemd/retailcrm-poller-backup.timer $(DESTDIR)$(UNITDIR)/retailcrm-poller-backup.timer
	install -Dm0644 config.example.yaml $(DESTDIR)$(SYSCONFDIR)/retailcrm-poller/config.example.yaml
	install -Dm0644 docs/config.schema.json $(DESTDIR)$(DATADIR)/config.schema.json

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/poller $(DESTDIR)$(UNITDIR)/retailcrm-poller.service \
		$(DESTDIR)$(UNITDIR)/retailcrm-poller-backup.service $(DESTDIR)$(UNITDIR)/retailcrm-poller-backup.timer \
		$(DESTDIR)$(SYSCONFDIR)/retailcrm-poller/config.example.yaml \
		$(DESTDIR)$(DATADIR)/config.schema.json

deb: build
	mkdir -p dist
	DEB_VERSION='$(DEB_VERSION)' $(NFPM) pkg --config packaging/nfpm.yaml --packager deb --target dist/

clean:
	rm -rf bin dist
