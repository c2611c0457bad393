package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/config/reference"
)

func configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the default configuration, check a configuration file, print the reference",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "Print every option with its default, as a commented YAML file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := reference.DefaultYAML()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}, &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check configuration files: every problem with its file and line",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var errs []error
			for _, p := range args {
				if _, err := config.Load(p); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", p)
			}
			return errors.Join(errs...)
		},
	}, &cobra.Command{
		Use:   "reference",
		Short: "Print the configuration reference (docs/config-reference.md) as Markdown",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := reference.Markdown()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	})
	return cmd
}
