package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/detect/anomaly"
)

func anomalyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "anomaly",
		Short: "Train and score syscall-sequence models offline, on ADFA-LD-format trace files",
		Long: `Train and score the models behind Vigil's learned-behaviour detection on trace
files: one trace per file, syscall numbers separated by white space (the
ADFA-LD format). A directory stands for its *.txt files.`,
	}
	cmd.AddCommand(anomalyTrainCmd(), anomalyScoreCmd())
	return cmd
}

func anomalyTrainCmd() *cobra.Command {
	var out string
	var p anomaly.Params
	var far float64
	cmd := &cobra.Command{
		Use:   "train -o MODEL TRACE|DIR...",
		Short: "Learn a model from normal traces and calibrate its threshold",
		Long: `Learn a model from normal traces. The threshold is calibrated by 5-fold
cross-validation: each fifth of the traces is scored by a model learned from
the rest, and the threshold is set so that a fraction --far of those scores
lies above it.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("-o MODEL is required")
			}
			traces, _, err := anomaly.ReadTraces(args...)
			if err != nil {
				return err
			}
			m, err := anomaly.Train(traces, p, far)
			if err != nil {
				return err
			}
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
				return err
			}
			var calls int
			for _, t := range traces {
				calls += len(t)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d traces, %d syscalls, %d distinct %d-grams; threshold %.4f (frame %d, target false-alarm rate %g)\n",
				len(traces), calls, len(m.Grams), m.N, m.Threshold, m.Frame, far)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "where to write the model (JSON)")
	cmd.Flags().IntVarP(&p.N, "n", "n", anomaly.DefaultParams.N, "n-gram length (2..6)")
	cmd.Flags().IntVar(&p.Frame, "frame", anomaly.DefaultParams.Frame, "n-grams per locality frame")
	cmd.Flags().Float64Var(&far, "far", 0.01, "target false-alarm rate per trace, for the threshold")
	return cmd
}

func anomalyScoreCmd() *cobra.Command {
	var model string
	var normal, attack []string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "score -m MODEL [TRACE|DIR...] [--normal DIR...] [--attack DIR...]",
		Short: "Score traces against a model; with labels, print ROC AUC, detection and false-alarm rates",
		Long: `Score traces against a model: one line per trace with its score and whether it
is above the model's threshold. Traces given with --normal and --attack are
labelled: the summary gives the ROC AUC, the detection rate (attack traces
above the threshold) and the false-alarm rate (normal traces above it). The
exit status is 1 when any unlabelled trace is above the threshold.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if model == "" {
				return errors.New("-m MODEL is required")
			}
			b, err := os.ReadFile(model)
			if err != nil {
				return err
			}
			var m anomaly.Model
			if err := json.Unmarshal(b, &m); err != nil {
				return fmt.Errorf("%s: %w", model, err)
			}
			if len(args)+len(normal)+len(attack) == 0 {
				return errors.New("no traces to score")
			}
			w := cmd.OutOrStdout()
			score := func(label string, paths []string) ([]float64, int, error) {
				if len(paths) == 0 {
					return nil, 0, nil
				}
				traces, names, err := anomaly.ReadTraces(paths...)
				if err != nil {
					return nil, 0, err
				}
				var scores []float64
				above := 0
				for i, t := range traces {
					s := m.Score(t)
					scores = append(scores, s)
					mark := ""
					if s > m.Threshold {
						mark, above = " ANOMALY", above+1
					}
					if !quiet {
						fmt.Fprintf(w, "%.4f%s\t%s\t%s\n", s, mark, label, filepath.Clean(names[i]))
					}
				}
				return scores, above, nil
			}
			_, above, err := score("-", args)
			if err != nil {
				return err
			}
			ns, _, err := score("normal", normal)
			if err != nil {
				return err
			}
			as, _, err := score("attack", attack)
			if err != nil {
				return err
			}
			if len(ns) > 0 || len(as) > 0 {
				printRates(w, anomaly.Evaluate(ns, as, m.Threshold), len(ns), len(as), m.Threshold)
			}
			if above > 0 {
				return exitError(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&model, "model", "m", "", "the model (from vigil anomaly train)")
	cmd.Flags().StringSliceVar(&normal, "normal", nil, "normal traces (file or directory; repeatable)")
	cmd.Flags().StringSliceVar(&attack, "attack", nil, "attack traces (file or directory; repeatable)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print the summary only")
	return cmd
}

func printRates(w io.Writer, r anomaly.Rates, normal, attack int, threshold float64) {
	fmt.Fprintf(w, "threshold %.4f: ", threshold)
	if attack > 0 {
		fmt.Fprintf(w, "detection rate %.3f (%d attack traces)", r.DetectionRate, attack)
	}
	if normal > 0 {
		if attack > 0 {
			fmt.Fprint(w, ", ")
		}
		fmt.Fprintf(w, "false-alarm rate %.3f (%d normal traces)", r.FalseAlarmRate, normal)
	}
	if normal > 0 && attack > 0 {
		fmt.Fprintf(w, ", ROC AUC %.3f", r.AUC)
	}
	fmt.Fprintln(w)
}
