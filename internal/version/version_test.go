package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tt := range []struct {
		name     string
		version  string
		settings []debug.BuildSetting
		want     string
	}{
		{"go install module@tag (no vcs info)", "v1.2.3", nil, "v1.2.3"},
		{"go build at a tag", "v1.2.3", vcs("false"), "v1.2.3"},
		{"go build at a tag, changed", "v1.2.3+dirty", vcs("true"), "v1.2.3-dirty"},
		{"go build at a pre-release tag", "v2.0.0-rc.1", vcs("false"), "v2.0.0-rc.1"},
		{"go build after a tag", "v1.2.4-0.20261205101500-0123456789ab", vcs("false"), "0123456789ab"},
		{"go build without tags", "v0.0.0-20261205101500-0123456789ab+dirty", vcs("true"), "0123456789ab-dirty"},
		{"go build without a version (-buildvcs=false)", "(devel)", nil, "dev"},
		{"go install module@commit", "v0.0.0-20261205101500-0123456789ab", nil, "0123456789ab"},
		{"go install module@commit after a tag", "v1.2.4-0.20261205101500-0123456789ab", nil, "0123456789ab"},
		{"go build, vcs info only", "(devel)", vcs("false"), "0123456789ab"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/retailcrm-poller/retailcrm-poller", Version: tt.version}, Settings: tt.settings}
			if got := fromBuildInfo(bi); got != tt.want {
				t.Errorf("fromBuildInfo = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestOneVersion: in a fresh clone of this repository, a plain `go build`
// of the binary prints the version the Makefile links into `make` and the
// .deb builds, the commit's; and both add -dirty once the tree has a
// change (an untracked file too).
func TestOneVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("clones the repository and builds the binary twice")
	}
	for _, tool := range []string{"git", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("git", "-C", root, "rev-parse", "--git-dir").Run(); err != nil {
		t.Skip("not a git checkout")
	}
	run := func(dir, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		return strings.TrimSpace(string(b))
	}
	// A clone, since the go command records no commit in a git worktree
	// (its .git is a file), where this test may run.
	clone := filepath.Join(t.TempDir(), "repo")
	run(root, "git", "clone", "-q", root, clone)
	tag, _ := exec.Command("git", "-C", clone, "describe", "--tags", "--exact-match", "--match", "v[0-9]*").Output()
	want := strings.TrimSpace(string(tag))
	if want == "" {
		want = run(clone, "git", "rev-parse", "HEAD")[:12]
	}
	bin := filepath.Join(t.TempDir(), "poller")
	for _, dirty := range []string{"", "-dirty"} {
		if dirty != "" {
			if err := os.WriteFile(filepath.Join(clone, "notes.txt"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		make := run(clone, "make", "-s", "version")
		// -buildvcs=true: the commit is recorded even where GOFLAGS says
		// otherwise, as a plain `go build` in a checkout does.
		run(clone, "go", "build", "-buildvcs=true", "-o", bin, "./cmd/poller")
		built := regexp.MustCompile(`^poller (\S+) \(`).FindStringSubmatch(run(clone, bin, "version"))
		if make != want+dirty || built == nil || built[1] != make {
			t.Errorf("make's version %q, go build's %v; want %s", make, built, want+dirty)
		}
	}
}

// The README's request example shows a User-Agent of the form sent.
func TestReadmeUserAgent(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`User-Agent: (\S+)/(\S+)`).FindAllStringSubmatch(string(b), -1)
	if len(m) == 0 {
		t.Fatal("README.md shows no User-Agent")
	}
	prefix, _, _ := strings.Cut(UserAgent(), "/")
	for _, ua := range m {
		if ua[1] != prefix || fromBuildInfo(&debug.BuildInfo{Main: debug.Module{Version: ua[2]}}) != ua[2] {
			t.Errorf("README.md shows User-Agent %s/%s; the poller sends %s/<version> with versions like v1.2.3", ua[1], ua[2], prefix)
		}
	}
}
