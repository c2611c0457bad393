package rules

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/internal/event"
)

// Payload rules: a rule with a payload: block names a byte pattern that
// the kernel searches for in the first bytes of TCP and UDP payloads
// (netguard's tcx programs). A packet that matches becomes a net event with
// event.action "payload" and no process, and only its rule is evaluated on
// it: its condition (true when left out) and exceptions decide the alert.
//
//	- id: stratum-mining-subscribe
//	  payload: {pattern: mining.subscribe, protocol: tcp}
//	  ...
//
// Payload rules are not on the stream of net events from the sensors: a
// condition of true would otherwise match every connect.

// The kernel's limits on patterns (netguard.MaxSignatures and friends).
const (
	MaxPayloadRules   = 32
	MaxPayloadPattern = 32
	// PayloadScanLen: a pattern must lie within this many first bytes of
	// a packet's payload.
	PayloadScanLen = 128
)

// Payload is what a payload rule searches for.
type Payload struct {
	Pattern []byte
	// Protocol is "tcp", "udp", or "" for both.
	Protocol string
	// Direction is "ingress", "egress", or "" for both.
	Direction string
	// Port matches either end of the packet; 0 matches any.
	Port uint16
}

// Matches says whether the pattern lies within the first PayloadScanLen
// bytes of data, as the kernel searches.
func (p *Payload) Matches(data []byte) bool {
	if len(data) > PayloadScanLen {
		data = data[:PayloadScanLen]
	}
	return bytes.Contains(data, p.Pattern)
}

// explain says whether a packet with these fields and payload would reach
// the rule, as the kernel decides it, and if not why.
func (p *Payload) explain(e *event.Event, data []byte) (bool, string) {
	n := e.Net
	if n == nil {
		n = &event.Net{}
	}
	if p.Protocol != "" && n.Protocol != "" && n.Protocol != p.Protocol {
		return false, fmt.Sprintf("network.transport %s is not the payload's protocol %s", n.Protocol, p.Protocol)
	}
	if d := n.Direction(); p.Direction != "" && d != "" && d != p.Direction {
		return false, fmt.Sprintf("network.direction %s is not the payload's direction %s", d, p.Direction)
	}
	if p.Port != 0 && (n.Source.Port() != 0 || n.Destination.Port() != 0) &&
		n.Source.Port() != p.Port && n.Destination.Port() != p.Port {
		return false, fmt.Sprintf("neither port is the payload's port %d", p.Port)
	}
	if !p.Matches(data) {
		return false, fmt.Sprintf("the payload does not hold the pattern within its first %d bytes", PayloadScanLen)
	}
	return true, ""
}

// rawPayload is a payload: block as read.
type rawPayload struct {
	pos Pos
	p   Payload
}

// payload reads a rule's payload: block.
func (p *parser) payload(n *yaml.Node) *rawPayload {
	out := &rawPayload{pos: p.f.pos(n)}
	var text, hexs *yaml.Node
	bad := false
	ok := p.mapping(n, "payload", map[string]func(v *yaml.Node){
		"pattern": func(v *yaml.Node) {
			if s, good := p.str(v, "payload pattern"); good {
				text, out.p.Pattern = v, []byte(s)
			}
		},
		"hex": func(v *yaml.Node) {
			s, good := p.str(v, "payload hex")
			if !good {
				return
			}
			hexs = v
			b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
			if err != nil {
				p.errorf(v, "payload hex %q: %v", s, err)
				bad = true
				return
			}
			out.p.Pattern = b
		},
		"protocol": func(v *yaml.Node) {
			if s, good := p.str(v, "payload protocol"); good {
				switch s {
				case "tcp", "udp":
					out.p.Protocol = s
				case "any":
				default:
					p.errorf(v, "payload protocol %q is not tcp, udp or any", s)
				}
			}
		},
		"direction": func(v *yaml.Node) {
			if s, good := p.str(v, "payload direction"); good {
				switch s {
				case "ingress", "egress":
					out.p.Direction = s
				case "both":
				default:
					p.errorf(v, "payload direction %q is not ingress, egress or both", s)
				}
			}
		},
		"port": func(v *yaml.Node) {
			var port int
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&port) != nil || port < 0 || port > 65535 {
				p.errorf(v, "payload port must be a number from 0 (any) to 65535")
				return
			}
			out.p.Port = uint16(port)
		},
	})
	if !ok || bad {
		return nil
	}
	switch {
	case text != nil && hexs != nil:
		p.errorf(hexs, "payload has both pattern and hex: give one")
		return nil
	case text == nil && hexs == nil:
		p.errorf(n, "payload has no pattern (text) or hex (bytes)")
		return nil
	}
	at := text
	if at == nil {
		at = hexs
	}
	if l := len(out.p.Pattern); l == 0 || l > MaxPayloadPattern {
		p.errorf(at, "payload pattern of %d bytes: the kernel searches for 1 to %d", l, MaxPayloadPattern)
		return nil
	}
	return out
}

// settlePayloadRule gives a payload rule what it may leave out: on [net]
// and the condition true. It reports false when the rule is not one.
func (p *parser) settlePayloadRule(n *yaml.Node, r *rawRule) bool {
	if r.payload == nil {
		return true
	}
	switch {
	case r.on == nil:
		r.on = []event.Kind{event.KindNet}
	case len(r.on) != 1 || r.on[0] != event.KindNet:
		p.errorf(n, "rule %q has a payload, so it is on net events only (on: [net] or leave on out)", r.id)
		return false
	}
	if r.cond.n == nil {
		r.cond = scalar{f: p.f, n: &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "true", Line: r.payload.pos.Line, Column: r.payload.pos.Column}}
	}
	return true
}

// testPayload takes a test event's payload (text) or payload_hex out of its
// mapping: they are the packet's bytes, not fields.
func (p *parser) testPayload(ev *yaml.Node) (rest *yaml.Node, data []byte, has bool) {
	rest = &yaml.Node{Kind: ev.Kind, Tag: ev.Tag, Line: ev.Line, Column: ev.Column, Style: ev.Style}
	for i := 0; i+1 < len(ev.Content); i += 2 {
		k, v := ev.Content[i], deref(ev.Content[i+1])
		switch k.Value {
		case "payload":
			if s, ok := p.str(v, "test payload"); ok {
				data, has = []byte(s), true
			}
		case "payload_hex":
			s, ok := p.str(v, "test payload_hex")
			if !ok {
				continue
			}
			b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
			if err != nil {
				p.errorf(v, "test payload_hex %q: %v", s, err)
				continue
			}
			data, has = b, true
		default:
			rest.Content = append(rest.Content, k, ev.Content[i+1])
		}
	}
	return rest, data, has
}
