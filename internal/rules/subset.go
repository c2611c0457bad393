package rules

// Subset returns a set of the enabled rules that keep accepts, sharing
// their compiled programs, with an evaluation context of its own: it can be
// evaluated on another goroutine than s. The fanotify Denier evaluates the
// deny rules this way while the agent's reader evaluates them all.
func (s *Set) Subset(keep func(RuleInfo) bool) (*Set, error) {
	out := &Set{noIndex: s.noIndex}
	for _, r := range s.rules {
		if r.info.Enabled && keep(r.info) {
			out.rules = append(out.rules, r)
		}
	}
	if err := out.index(); err != nil {
		return nil, err
	}
	if s.ctx != nil {
		out.ctx.host = s.ctx.host
	}
	return out, nil
}
