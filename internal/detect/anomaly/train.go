package anomaly

import (
	"cmp"
	"errors"
	"slices"
)

// Calibrate returns the threshold above which at most a fraction far of
// scores lie: the scores of normal traces the model was not trained on.
func Calibrate(scores []float64, far float64) float64 {
	if len(scores) == 0 {
		return 0
	}
	s := slices.Clone(scores)
	slices.Sort(s)
	allowed := int(far * float64(len(s)))
	if allowed >= len(s) {
		allowed = len(s) - 1
	}
	return s[len(s)-1-allowed]
}

// Folds is how many parts Train splits the traces into for calibration.
const Folds = 5

// Train learns a model from normal traces and calibrates its threshold to
// the false-alarm rate far by cross-validation: each of Folds parts of the
// traces is scored by a model learned from the others, and the threshold is
// taken from all those scores. The model returned is learned from every trace.
func Train(traces [][]uint16, p Params, far float64) (*Model, error) {
	if len(traces) < Folds {
		return nil, errors.New("too few traces to train on: want at least 5")
	}
	if far < 0 || far >= 1 {
		return nil, errors.New("false-alarm rate must be in [0, 1)")
	}
	var scores []float64
	for f := range Folds {
		m, err := NewModel(p)
		if err != nil {
			return nil, err
		}
		for i, t := range traces {
			if i%Folds != f {
				m.Learn(t)
			}
		}
		for i, t := range traces {
			if i%Folds == f {
				scores = append(scores, m.Score(t))
			}
		}
	}
	m, err := NewModel(p)
	if err != nil {
		return nil, err
	}
	for _, t := range traces {
		m.Learn(t)
	}
	m.Threshold = Calibrate(scores, far)
	return m, nil
}

// Rates are how a threshold does on labelled traces.
type Rates struct {
	AUC            float64 // area under the ROC curve: P(attack scores above normal)
	DetectionRate  float64 // attack traces scored above the threshold
	FalseAlarmRate float64 // normal traces scored above the threshold
}

// Evaluate scores normal and attack traces against threshold.
func Evaluate(normal, attack []float64, threshold float64) Rates {
	var r Rates
	r.AUC = auc(normal, attack)
	for _, s := range attack {
		if s > threshold {
			r.DetectionRate++
		}
	}
	for _, s := range normal {
		if s > threshold {
			r.FalseAlarmRate++
		}
	}
	if len(attack) > 0 {
		r.DetectionRate /= float64(len(attack))
	}
	if len(normal) > 0 {
		r.FalseAlarmRate /= float64(len(normal))
	}
	return r
}

// auc is the Mann-Whitney statistic: the chance that a random attack trace
// scores above a random normal one, ties counting half.
func auc(normal, attack []float64) float64 {
	if len(normal) == 0 || len(attack) == 0 {
		return 0
	}
	type scored struct {
		s      float64
		attack bool
	}
	all := make([]scored, 0, len(normal)+len(attack))
	for _, s := range normal {
		all = append(all, scored{s, false})
	}
	for _, s := range attack {
		all = append(all, scored{s, true})
	}
	slices.SortFunc(all, func(a, b scored) int { return cmp.Compare(a.s, b.s) })
	// Sum the ranks of attack traces, ties given their mean rank.
	var rankSum float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].s == all[i].s {
			j++
		}
		mean := float64(i+j+1) / 2 // ranks i+1..j
		for k := i; k < j; k++ {
			if all[k].attack {
				rankSum += mean
			}
		}
		i = j
	}
	na, nn := float64(len(attack)), float64(len(normal))
	return (rankSum - na*(na+1)/2) / (na * nn)
}
