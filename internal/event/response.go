package event

// Outcomes of a response.
const (
	ResponseDone        = "done"         // the action was carried out
	ResponseDryRun      = "dry-run"      // it would have been: dry-run is on for the rule or globally
	ResponseRefused     = "refused"      // a safety check forbade it (pid 1, Vigil itself, an allowed program...)
	ResponseRateLimited = "rate-limited" // too many actions in a short time
	ResponseFailed      = "failed"       // it was tried and did not work (the error says why)
)

// Response is an action Vigil took, would have taken, or failed to take,
// because a rule asked for it. Every one is an event: an enforcement agent
// that acts silently cannot be audited.
type Response struct {
	RuleID string
	// Action is the rule's response: kill, deny, block-ip, isolate-host, freeze.
	Action string
	// Mechanism says how: "bpf_send_signal at exec", "pidfd_send_signal",
	// "fanotify", "cgroup/connect4", "xdp+tcx", "cgroup.freeze"...
	Mechanism string
	// Target names what was acted on: "pid 1234", "10.0.0.1/32", a cgroup path.
	Target string
	// Outcome is one of the Response* constants.
	Outcome string
	// Reason explains a refusal or a failure, or qualifies a success.
	Reason string
}

// NewResponse makes the event for a response about trigger's process.
func NewResponse(r Response, trigger *Event) *Event {
	e := &Event{Kind: KindResponse, Response: &r}
	if trigger != nil {
		e.Time = trigger.Time
		e.Process = trigger.Process
		e.Parent = trigger.Parent
		e.Ancestors = trigger.Ancestors
	}
	return e
}

// responseDoc renders a response: event.action is the action, event.outcome
// success or failure, rule.id the rule that asked, vigil.response the rest.
func responseDoc(r *Response, d *Document) {
	d.Event.Dataset, d.Event.Action = "vigil.response", r.Action
	d.Event.Category, d.Event.Type = []string{"intrusion_detection"}, []string{"denied"}
	switch r.Outcome {
	case ResponseDone:
		d.Event.Outcome = "success"
	case ResponseDryRun:
		d.Event.Outcome, d.Event.Type = "unknown", []string{"info"}
	default:
		d.Event.Outcome, d.Event.Type = "failure", []string{"info"}
	}
	if r.RuleID != "" {
		d.Rule = &ecsRule{ID: r.RuleID}
	}
	d.Vigil.Response = &vigilResponse{Mechanism: r.Mechanism, Target: r.Target, Outcome: r.Outcome, Reason: r.Reason}
}

type vigilResponse struct {
	Mechanism string `json:"mechanism,omitempty"`
	Target    string `json:"target,omitempty"`
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason,omitempty"`
}
