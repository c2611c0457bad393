// Command gen writes docs/config-reference.md from internal/config (make docs).
//
//	go run ./internal/config/gen [-o docs/config-reference.md]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/vigilsec/vigil/internal/config/reference"
)

func main() {
	out := flag.String("o", "docs/config-reference.md", `where to write the reference ("-" for stdout)`)
	flag.Parse()
	b, err := reference.Markdown()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if *out == "-" {
		os.Stdout.Write(b)
		return
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
