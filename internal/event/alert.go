package event

// Severity ranks alerts, from least to most urgent.
type Severity uint8

const (
	SeverityInfo Severity = iota + 1
	SeverityNotice
	SeverityWarning
	SeverityError
	SeverityCritical
)

var severityNames = [...]string{"", "info", "notice", "warning", "error", "critical"}

func (s Severity) String() string {
	if int(s) < len(severityNames) && s > 0 {
		return severityNames[s]
	}
	return "unknown"
}

// ParseSeverity reads a severity name.
func ParseSeverity(name string) (Severity, bool) {
	for i, n := range severityNames {
		if i > 0 && n == name {
			return Severity(i), true
		}
	}
	return 0, false
}

// Alert is a detection: a rule matched an event. The alert event's Process,
// Parent and Ancestors are those of the triggering event; Trigger is the
// event itself.
type Alert struct {
	RuleID   string
	RuleName string
	// Ruleset names the policy the rule belongs to (sandbox:<profile>);
	// empty for detection rules.
	Ruleset     string
	Description string
	Severity    Severity
	Tags        []string // free-form tags, e.g. "container", "persistence"
	MITRE       []string // ATT&CK technique ids, e.g. "T1059.004"
	Message     string   // the rule's output template, filled in
	Response    string   // what the rule asked for: "alert", "kill", ...
	DryRun      bool     // the response is to be reported, not carried out
	Trigger     *Event
}

// NewAlert makes the alert event for a rule match on trigger.
func NewAlert(a Alert, trigger *Event) *Event {
	a.Trigger = trigger
	return &Event{
		Time:      trigger.Time,
		Kind:      KindAlert,
		Process:   trigger.Process,
		Parent:    trigger.Parent,
		Ancestors: trigger.Ancestors,
		Origin:    trigger.Origin,
		Container: trigger.Container,
		Alert:     &a,
	}
}
