// Package version holds the build's version and the User-Agent. The
// version comes from the module's build info, so `go build`, `go install`
// and `make` print the same one for the same commit:
//
//   - a release tag on the commit, as `go install module@v1.2.3` or a build
//     at that tag records it: v1.2.3;
//   - any other commit: the first 12 hex digits of its revision (from the
//     checkout, or from the pseudo-version of `go install module@commit`);
//   - either with -dirty when the work tree had changes (untracked files
//     included, as git status shows them).
//
// The Makefile computes the same string from git and sets it with
// -ldflags "-X github.com/retailcrm-poller/retailcrm-poller/internal/version.Version=...",
// which wins; a build without either says dev.
package version

import (
	"regexp"
	"runtime/debug"
	"strings"
)

// Version is set at link time; "dev" means: take it from the build info.
var Version = "dev"

// String returns the version of this build.
func String() string {
	if Version != "dev" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	return fromBuildInfo(bi)
}

// UserAgent is sent on every outgoing request.
func UserAgent() string { return "retailcrm-poller/" + String() }

// release matches a module version that is a tag, not a pseudo-version
// (vX.Y.Z-[0.]yyyymmddhhmmss-abcdefabcdef) Go makes up for other commits.
var (
	release = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)
	pseudo  = regexp.MustCompile(`\d{14}-([0-9a-f]{12})$`)
)

// fromBuildInfo derives the version from what the go command recorded.
func fromBuildInfo(bi *debug.BuildInfo) string {
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	dirty := ""
	if settings["vcs.modified"] == "true" {
		dirty = "-dirty"
	}
	tag := strings.TrimSuffix(bi.Main.Version, "+dirty")
	commit := pseudo.FindStringSubmatch(tag)
	switch rev := settings["vcs.revision"]; {
	case release.MatchString(tag) && commit == nil:
		return tag + dirty
	case len(rev) >= 12:
		return rev[:12] + dirty
	case commit != nil: // go install module@commit: the pseudo-version names it
		return commit[1] + dirty
	}
	return Version
}
