package config

import "embed"

// Source is this package's Go source, for the configuration reference
// (internal/config/reference): the doc comments of the Config structs are
// the meaning of each option, in `vigil config default` and
// docs/config-reference.md alike.
//
//go:embed *.go
var Source embed.FS
