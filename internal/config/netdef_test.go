package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNetDefenseSection(t *testing.T) {
	dir := t.TempDir()
	load := func(y string) (Config, error) {
		p := filepath.Join(dir, "v.yaml")
		os.WriteFile(p, []byte(y), 0o644)
		return Load(p)
	}
	c, err := load(`netdefense:
  flood: {enabled: true, source: {pps: 5000}, allow: [192.0.2.0/24]}
  scan: {action: block}
  intel:
    lists: [{name: f, path: /etc/vigil/intel/f.netset, kind: ip, action: block}]
`)
	if err != nil {
		t.Fatal(err)
	}
	n := c.NetDefense
	if !n.Enabled || n.Flood.Source.PPS != 5000 || len(n.Flood.Allow) != 1 || n.Scan.Action != "block" ||
		len(n.Intel.Lists) != 1 {
		t.Errorf("loaded %+v", n)
	}
	if d := Default().NetDefense; d.Validate() != nil {
		t.Errorf("defaults: %+v, %v", d, d.Validate())
	}
	for _, c := range []struct{ yaml, want string }{
		{"netdefense: {scan: {action: kill}}", `netdefense.scan.action: "kill" is not alert or block`},
		{"netdefense: {intel: {lists: [{path: rel, kind: ip, action: alert}]}}", `netdefense.intel.lists[0].path: "rel" is not an absolute path`},
		{"netdefense: {intel: {lists: [{path: /x, kind: url, action: alert}]}}", `kind: "url" is not ip or domain`},
		{"netdefense: {payload: {signatures: [{name: a, pattern: x}]}}", "field payload not found in type config.NetDefense (payload signatures are rules now: a rule with payload:, see docs/network.md)"},
		{"netdefense: {flood: {block: true, block_for: 0s}}", "flood.block_for: must be positive"},
	} {
		if _, err := load(c.yaml); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.yaml, err, c.want)
		}
	}
}
