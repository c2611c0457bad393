package rules

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
)

const payloadHead = `rules:
  - id: p
    name: P
    severity: warning
`

func TestPayloadRuleErrors(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
	}{
		{"no pattern", payloadHead + "    payload: {protocol: tcp}\n",
			[]string{`r.yaml:5:14: payload has no pattern (text) or hex (bytes)`}},
		{"both pattern and hex", payloadHead + "    payload: {pattern: ab, hex: \"61 62\"}\n",
			[]string{`r.yaml:5:33: payload has both pattern and hex: give one`}},
		{"bad hex", payloadHead + "    payload: {hex: \"6g\"}\n",
			[]string{`r.yaml:5:20: payload hex "6g": encoding/hex: invalid byte: U+0067 'g'`}},
		{"pattern too long", payloadHead + "    payload: {pattern: 0123456789abcdef0123456789abcdefX}\n",
			[]string{`r.yaml:5:24: payload pattern of 33 bytes: the kernel searches for 1 to 32`}},
		{"bad fields", payloadHead + "    payload: {pattern: x, protocol: sctp, direction: in, port: 70000}\n",
			[]string{
				`r.yaml:5:37: payload protocol "sctp" is not tcp, udp or any`,
				`r.yaml:5:54: payload direction "in" is not ingress, egress or both`,
				`r.yaml:5:64: payload port must be a number from 0 (any) to 65535`,
			}},
		{"on other kinds", payloadHead + "    on: [exec]\n    payload: {pattern: x}\n",
			[]string{`r.yaml:2:5: rule "p" has a payload, so it is on net events only (on: [net] or leave on out)`}},
		{"deny with a condition", payloadHead + "    payload: {pattern: x}\n    condition: destination.port == 80\n    response: deny\n",
			[]string{`r.yaml:7:15: rule "p": deny on a payload rule drops the matching packets in the kernel, which cannot run a condition: ` +
				`leave the condition out (or true) and give no exceptions, or use block-ip, which acts after the rule decides`}},
		{"kill", payloadHead + "    payload: {pattern: x}\n    response: kill\n",
			[]string{`r.yaml:6:15: rule "p": response kill cannot act on a packet: a payload rule may alert, deny (drop the packets in the kernel), block-ip (the remote address) or isolate-host`}},
		{"test payload on another rule", ruleHead + "    condition: \"true\"\n    tests:\n      - {name: t, match: true, event: {payload: x}}\n",
			[]string{`r.yaml:8:9: test "t" gives a payload, but rule "r" has no payload: block`}},
		{"test payload_hex", payloadHead + "    payload: {pattern: x}\n    tests:\n      - {name: t, match: true, event: {payload_hex: zz}}\n",
			[]string{`r.yaml:7:53: test payload_hex "zz": encoding/hex: invalid byte: U+007A 'z'`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, loadErrors(t, files("r.yaml", tt.file))); diff != "" {
				t.Errorf("load errors (-want +got):\n%s", diff)
			}
		})
	}
}

// A payload rule runs only on the packets that matched it: never through
// Eval on other net events, whatever its condition.
func TestPayloadRuleEval(t *testing.T) {
	set, err := Load(files("r.yaml", `rules:
  - id: miner
    name: Miner
    severity: warning
    payload: {hex: "6d 69 6e 69 6e 67", protocol: tcp, port: 3333}
    response: block-ip
    exceptions:
      - name: our pool
        condition: destination.ip == "192.0.2.1"
  - id: drop-it
    name: Drop it
    severity: error
    payload: {pattern: "evil", direction: ingress}
    response: deny
  - id: connects
    name: Connects
    severity: info
    on: [net]
    condition: event.action == "connect"
`))
	if err != nil {
		t.Fatal(err)
	}
	infos := map[string]RuleInfo{}
	for _, ri := range set.Rules() {
		infos[ri.ID] = ri
	}
	want := Payload{Pattern: []byte("mining"), Protocol: "tcp", Port: 3333}
	if p := infos["miner"].Payload; p == nil || !cmp.Equal(*p, want) || !cmp.Equal(infos["miner"].On, []event.Kind{event.KindNet}) {
		t.Errorf("miner payload %+v, want %+v", p, want)
	}
	if p := infos["drop-it"].Plan; p == nil || !p.PayloadDrop {
		t.Errorf("drop-it plan %+v, want PayloadDrop", p)
	}
	if p := infos["miner"].Plan; p == nil || p.PayloadDrop {
		t.Errorf("miner plan %+v, want no drop", p)
	}
	if got := set.Needs().Kinds; !cmp.Equal(got, []event.Kind{event.KindNet}) {
		t.Errorf("needs kinds %v: only the connects rule needs net events from the sensor", got)
	}

	connect := &event.Event{Kind: event.KindNet, Net: &event.Net{Op: event.NetConnect, Protocol: "tcp",
		Destination: netip.MustParseAddrPort("203.0.113.5:3333")}}
	var ids []string
	collect := func(al *event.Event) { ids = append(ids, al.Alert.RuleID) }
	set.Eval(connect, collect)
	if !cmp.Equal(ids, []string{"connects"}) {
		t.Errorf("Eval on a connect raised %v, want only connects", ids)
	}

	pkt := func(remote string) *event.Event {
		return &event.Event{Kind: event.KindNet, Net: &event.Net{Op: event.NetPayload, Protocol: "tcp", Dir: "egress",
			Source: netip.MustParseAddrPort("10.0.0.2:40000"), Destination: netip.MustParseAddrPort(remote)}}
	}
	ids = nil
	set.Eval(pkt("203.0.113.5:3333"), collect)
	if len(ids) != 0 {
		t.Errorf("Eval on a payload event raised %v: payload events go to EvalRule", ids)
	}
	set.EvalRule("miner", pkt("203.0.113.5:3333"), collect)
	set.EvalRule("miner", pkt("192.0.2.1:3333"), collect) // the exception
	set.EvalRule("nope", pkt("203.0.113.5:3333"), collect)
	if !cmp.Equal(ids, []string{"miner"}) {
		t.Errorf("EvalRule raised %v, want one miner alert (the pool is an exception)", ids)
	}
}

func TestPayloadMatches(t *testing.T) {
	p := &Payload{Pattern: []byte("abc")}
	long := make([]byte, PayloadScanLen-3)
	for i := range long {
		long[i] = 'x'
	}
	for _, tt := range []struct {
		data string
		want bool
	}{
		{"abc", true}, {"xxabcxx", true}, {"ab", false}, {"", false},
		{string(long) + "abc", true},   // ends at byte 128
		{string(long) + "xabc", false}, // ends at byte 129
	} {
		if got := p.Matches([]byte(tt.data)); got != tt.want {
			t.Errorf("Matches(%d bytes ending %q) = %v, want %v", len(tt.data), tt.data[max(0, len(tt.data)-5):], got, tt.want)
		}
	}
}
