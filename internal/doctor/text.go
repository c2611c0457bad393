package doctor

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText prints the report for a person: each check, what Vigil will
// use, and a verdict on the last line.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Linux %s\n\n", r.Kernel)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.ID, c.Found)
		if c.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", c.Fix)
		}
	}
	tw.Flush()

	b.WriteString("\nVigil will use:\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, u := range r.Uses {
		line := u.Mechanism
		if u.Instead != "" {
			line += " (not " + u.Instead + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", u.Job, line)
	}
	tw.Flush()

	if len(r.Interfaces) > 0 {
		b.WriteString("\nXDP per interface:\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, in := range r.Interfaces {
			drv := in.Driver
			if drv == "" {
				drv = "virtual"
			}
			mode := in.Mode()
			if in.Offload {
				mode += ", offload"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", in.Name, drv, mode)
		}
		tw.Flush()
	}

	warns, fails := 0, 0
	for _, c := range r.Checks {
		switch c.Status {
		case Warn:
			warns++
		case Fail:
			fails++
		}
	}
	b.WriteByte('\n')
	if fails > 0 {
		fmt.Fprintf(&b, "Vigil cannot run here: %d check(s) failed.\n", fails)
	} else {
		fmt.Fprintf(&b, "Vigil can run here (%d warning(s)).\n", warns)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
