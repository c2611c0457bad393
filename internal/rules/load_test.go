package rules

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// files makes a source of rule files, named in messages as they are here.
func files(kv ...string) Source {
	fsys := fstest.MapFS{}
	for i := 0; i+1 < len(kv); i += 2 {
		fsys[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1])}
	}
	return Source{FS: fsys}
}

func loadErrors(t *testing.T, sources ...Source) []string {
	t.Helper()
	_, err := Load(sources...)
	if err == nil {
		return nil
	}
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("Load: %v, want a *LoadError", err)
	}
	var out []string
	for _, e := range le.Errors {
		out = append(out, e.Error())
	}
	return out
}

// rule is a valid rule to build test files from.
const ruleHead = `rules:
  - id: r
    name: R
    severity: warning
    on: [exec]
`

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  []string
	}{
		{
			name:  "unknown object",
			files: []string{"rules.yaml", ruleHead + `    condition: procss.name == "sh"` + "\n"},
			want:  []string{`rules.yaml:6:16: unknown field "procss.name" (did you mean "process.name"?)`},
		},
		{
			name:  "unknown field",
			files: []string{"rules.yaml", ruleHead + `    condition: process.parent.nmae == "sh"` + "\n"},
			want:  []string{`rules.yaml:6:16: unknown field "process.parent.nmae" (did you mean "process.parent.name"?)`},
		},
		{
			name: "typo in a list name",
			files: []string{"rules.yaml", "lists:\n  - name: shell_names\n    items: [sh, bash]\n" + ruleHead +
				`    condition: process.name in shel_names` + "\n"},
			want: []string{`rules.yaml:9:32: unknown list or macro "shel_names" (did you mean "shell_names"?)`},
		},
		{
			name: "positions in a literal block",
			files: []string{"rules.yaml", ruleHead + "    condition: |\n      process.name == \"sh\" &&\n" +
				"        process.nmae.startsWith(\"x\")\n"},
			want: []string{`rules.yaml:8:9: unknown field "process.nmae" (did you mean "process.name"?)`},
		},
		{
			name: "positions in a folded block and a quoted string",
			files: []string{"rules.yaml", ruleHead + "    condition: >\n      process.name == \"sh\" &&\n" +
				"      file.paht == \"x\"\n" +
				"    exceptions:\n      - name: x\n        condition: \"process.pid == 1 && user.idd == \\\"0\\\"\"\n"},
			want: []string{
				`rules.yaml:8:7: unknown field "file.paht" (did you mean "file.path"?)`,
				`rules.yaml:11:41: unknown field "user.idd" (did you mean "user.id"?)`,
			},
		},
		{
			name: "unknown keys",
			files: []string{"rules.yaml", "rulez: []\n" + ruleHead + "    condtion: process.pid == 1\n" +
				"    condition: process.pid == 1\n"},
			want: []string{
				`rules.yaml:1:1: unknown key "rulez" in rule file (want lists, macros, overrides, rules)`,
				`rules.yaml:7:5: unknown key "condtion" in rule (want condition, description, dry_run, enabled, exceptions, id, mitre, name, on, output, payload, response, severity, tags, tests, watch)`,
			},
		},
		{
			name:  "condition that is not boolean",
			files: []string{"rules.yaml", ruleHead + "    condition: process.name\n"},
			want:  []string{`rules.yaml:6:16: condition is not boolean: it is string`},
		},
		{
			name:  "type error",
			files: []string{"rules.yaml", ruleHead + "    condition: user.id == 0\n"},
			want:  []string{`rules.yaml:6:24: found no matching overload for '_==_' applied to '(string, int)'`},
		},
		{
			name:  "syntax error",
			files: []string{"rules.yaml", ruleHead + "    condition: process.pid == \n"},
			want:  []string{`rules.yaml:6:30: syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`},
		},
		{
			name: "bad placeholders",
			files: []string{"rules.yaml", ruleHead + "    condition: process.pid == 1\n" +
				`    output: "{process.executable} {procss.name} {process.parent} {process} {1+1} {x"` + "\n"},
			want: []string{
				`rules.yaml:7:36: unknown field "procss.name" in output`,
				`rules.yaml:7:50: output placeholder {process.parent} names an object: name one of its fields`,
				`rules.yaml:7:67: output placeholder {process} names an object: name one of its fields`,
				`rules.yaml:7:77: output placeholder {1+1} must name a field, as in {process.executable}`,
				`rules.yaml:7:82: output has a { without its } (write {{ for a brace)`,
			},
		},
		{
			name: "duplicate id in one file",
			files: []string{"rules.yaml", ruleHead + "    condition: process.pid == 1\n" +
				"  - id: r\n    name: R2\n    severity: info\n    on: [exec]\n    condition: process.pid == 2\n"},
			want: []string{`rules.yaml:7:9: duplicate rule id "r" (first at line 2)`},
		},
		{
			name: "macro cycle",
			files: []string{"rules.yaml", "macros:\n  - name: a\n    condition: b && process.pid == 1\n" +
				"  - name: b\n    condition: c\n  - name: c\n    condition: a\n" + ruleHead + "    condition: a\n"},
			want: []string{`rules.yaml:2:11: macro cycle: a -> b -> c -> a`},
		},
		{
			name: "macro that is not boolean, and a rule using it",
			files: []string{"rules.yaml", "macros:\n  - name: m\n    condition: process.name\n" + ruleHead +
				"    condition: m\n"},
			want: []string{`rules.yaml:3:16: macro condition is not boolean: it is string`},
		},
		{
			name: "bad values",
			files: []string{"rules.yaml", `rules:
  - id: Bad_Id
    name: R
    severity: severe
    on: [exec, exce]
    mitre: [T1059, Execution]
    response: nuke
    enabled: maybe
    watch: {writes: [etc/passwd]}
    condition: process.pid == 1
`},
			want: []string{
				`rules.yaml:2:9: rule id "Bad_Id" must be lower case letters, digits and -`,
				`rules.yaml:4:15: unknown severity "severe" (want info, notice, warning, error, critical)`,
				`rules.yaml:5:16: unknown event kind "exce" in on (want exec, fork, exit, file, cred, net, kernel)`,
				`rules.yaml:6:20: "Execution" is not an ATT&CK technique id (T1059 or T1059.004)`,
				`rules.yaml:7:15: unknown response "nuke" (want alert, kill, deny, block-ip, isolate-host, freeze)`,
				`rules.yaml:8:14: enabled must be true or false`,
				`rules.yaml:9:22: watch path "etc/passwd" must be absolute`,
			},
		},
		{
			name:  "missing keys",
			files: []string{"rules.yaml", "rules:\n  - id: r\n    name: R\n"},
			want:  []string{`rules.yaml:2:5: rule has no "severity"`, `rules.yaml:2:5: rule has no "on"`, `rules.yaml:2:5: rule has no "condition"`},
		},
		{
			name:  "yaml syntax",
			files: []string{"rules.yaml", ruleHead + "    condition: \"process.pid == 1\n"},
			want:  []string{`rules.yaml:6:1: found unexpected end of stream`},
		},
		{
			name: "lists and macros",
			files: []string{"rules.yaml", `lists:
  - name: process
    items: [a]
  - name: in
    items: [a]
  - name: ports
    items: [22, "80"]
  - name: more
    append: true
    items: [x]
macros:
  - name: Big
    condition: "true"
`},
			want: []string{
				`rules.yaml:2:11: list name "process" is the name of a field object`,
				`rules.yaml:4:11: list name "in" is a reserved word`,
				`rules.yaml:7:12: list mixes strings and integers: quote the numbers to make them strings`,
				`rules.yaml:8:11: append to unknown list "more"`,
				`rules.yaml:12:11: macro name "Big" must be lower case letters, digits and _, starting with a letter`,
			},
		},
		{
			name: "test events",
			files: []string{"rules.yaml", ruleHead + "    condition: process.pid == 1\n" + `    tests:
      - name: a
        match: true
        event: {process.nmae: x, process.pid: "1", file.name: passwd, process.parent: x}
      - name: b
        match: true
        event:
          event.action: exce
          process:
            user.id: root
`},
			want: []string{
				`rules.yaml:10:17: unknown field "process.nmae"`,
				`rules.yaml:10:47: field "process.pid": want an integer`,
				`rules.yaml:10:52: field "file.name" cannot be set: it is derived from file.path`,
				`rules.yaml:10:71: field "process.parent" is an object: set its fields`,
				`rules.yaml:14:25: field "event.action": unknown action "exce"`,
				`rules.yaml:16:22: field "process.user.id": id "root" is not a decimal number`,
			},
		},
		{
			name: "override of an unknown rule",
			files: []string{"a.yaml", ruleHead + "    condition: process.pid == 1\n",
				"b.yaml", "overrides:\n  - id: q\n    enabled: false\n"},
			want: []string{`b.yaml:2:9: override of unknown rule "q"`},
		},
		{
			name: "errors of several files, in order",
			files: []string{"b.yaml", ruleHead + "    condition: procss.pid == 1\n",
				"a.yaml", strings.Replace(ruleHead, "id: r", "id: q", 1) + "    condition: process.pdi == 1\n"},
			want: []string{
				`a.yaml:6:16: unknown field "process.pdi" (did you mean "process.pid"?)`,
				`b.yaml:6:16: unknown field "procss.pid" (did you mean "process.pid"?)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loadErrors(t, files(tt.files...))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("load errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadDir(t *testing.T) {
	s, err := Load(Dir("testdata/bench"))
	if err != nil {
		t.Fatal(err)
	}
	rules := s.Rules()
	if len(rules) != 30 {
		t.Fatalf("%d rules, want 30", len(rules))
	}
	if got, want := rules[0].Source.String(), "testdata/bench/rules.yaml:30:9"; got != want {
		t.Errorf("first rule's source = %s, want %s", got, want)
	}
}

func TestNotices(t *testing.T) {
	s, err := Load(
		files("a.yaml", "lists:\n  - name: l\n    items: [a]\n"+ruleHead+"    condition: process.name in l\n"),
		files("b.yaml", "lists:\n  - name: l\n    items: [b]\n"+ruleHead+"    condition: process.name in l\n"+
			"overrides:\n  - id: r\n    severity: critical\n    enabled: false\n"),
	)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range s.Notices() {
		got = append(got, n.String())
	}
	want := []string{
		`b.yaml:2:11: list "l" replaces the one at a.yaml:2:11`,
		`b.yaml:5:9: rule "r" replaces the one at a.yaml:5:9`,
		`b.yaml:11:9: override of rule "r" (b.yaml:5:9): enabled=false, severity=critical`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("notices (-want +got):\n%s", diff)
	}
}
