package config

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// installedSchema is where make install and the .deb put the schema.
const installedSchema = "/usr/share/retailcrm-poller/config.schema.json"

// TestSchemaInstalled: the schema has its stable $id, make install and the
// .deb install it, and the example's yaml-language-server line points at
// the installed file.
func TestSchemaInstalled(t *testing.T) {
	data, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		ID string `json:"$id"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.ID != "urn:retailcrm-poller:config" {
		t.Errorf("$id %q", doc.ID)
	}

	f, err := os.Open("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	if want := "# yaml-language-server: $schema=file://" + installedSchema; sc.Text() != want {
		t.Errorf("config.example.yaml starts with\n%s\nwant\n%s", sc.Text(), want)
	}

	raw, err := os.ReadFile("../../packaging/nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Contents []struct{ Src, Dst string }
	}
	if err := yaml.Unmarshal(raw, &pkg); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range pkg.Contents {
		found = found || c.Src == "docs/config.schema.json" && c.Dst == installedSchema
	}
	if !found {
		t.Errorf("packaging/nfpm.yaml does not install docs/config.schema.json as %s", installedSchema)
	}

	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed (apt-get install make; .ci/run installs it and runs make install)")
	}
	out, err := exec.Command("make", "-C", "../..", "-n", "--no-print-directory", "install", "DESTDIR=/stage").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n install: %v\n%s", err, out)
	}
	if want := "docs/config.schema.json /stage" + installedSchema; !strings.Contains(string(out), want) {
		t.Errorf("make install does not install %s:\n%s", want, out)
	}
}
