// Package version holds the build version, set at link time with
// -ldflags "-X github.com/retailcrm-poller/retailcrm-poller/internal/version.Version=v1.2.3".
package version

import "runtime/debug"

// Version of this build.
var Version = "dev"

// String returns Version, or the module version recorded by `go install`.
func String() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}

// UserAgent is sent on every outgoing request.
func UserAgent() string { return "retailcrm-poller/" + String() }
