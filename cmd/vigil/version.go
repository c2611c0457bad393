package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/version"
)

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "vigil %s %s/%s %s\n", version.String(), runtime.GOOS, runtime.GOARCH, runtime.Version())
		},
	}
}
