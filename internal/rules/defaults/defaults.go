// Package defaults holds Vigil's built-in rules, embedded in the binary.
// Users override or disable them by id from their own rule directories.
package defaults

import (
	"embed"

	"github.com/vigilsec/vigil/internal/rules"
)

//go:embed *.yaml
var files embed.FS

// Source is the built-in rule set, named "builtin" in messages.
func Source() rules.Source { return rules.Source{Name: "builtin", FS: files} }
