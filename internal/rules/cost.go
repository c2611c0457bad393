package rules

import (
	"errors"
	"math"
	"strconv"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"
)

// Evaluation cost. CEL measures what a condition costs in abstract units
// (about one per operation, one per ten bytes a string function scans), and
// can bound that cost before the condition ever runs, given bounds on the
// sizes of what it reads. Vigil's events are bounded: argv is cut at
// VIGIL_ARGS_MAX (16 KiB) bytes, so no string and no list of strings an
// event carries is longer; paths are shorter; ancestry is
// process.ancestry_depth deep (16 by default; maxAncestors here).
//
// A condition (with its exceptions) is judged on its worst case at load:
//
//   - up to RuntimeCostLimit (1e7): it runs as it is, with nothing added to the
//     hot path (most rules: comparisons, and scans of strings);
//   - up to MaxCost: it runs with CEL's cost tracking, and an evaluation
//     that passes RuntimeCostLimit is stopped, counted (Set.CostExceeded)
//     and does not match; the event is delivered as any other;
//   - above MaxCost: the rule is refused, at the condition's place in its
//     file.
//
// MaxCost equals RuntimeCostLimit, so no loaded rule is tracked: cel-go's
// cost tracker (v0.31.0) is quadratic in the steps of an evaluation, and a
// tracked rule at 6.4e7 took 36 s on one exec with 3,000 arguments, which an
// attacker chooses (docs/hardening.md). The tracked tier stays for tests,
// which lower the runtime limit, and for a cel-go that fixes it.
//
// The estimate takes every size at its bound (below) at once, which real
// events do not reach together, so a rule between the two limits normally
// runs far below the runtime limit. The built-in rules are all below
// RuntimeCostLimit, at 1.5e6 at most (TestBuiltinRulesCost), so none pays
// for tracking.
const (
	// MaxCost is the worst-case cost above which a rule is refused. The
	// costliest built-in rule is at 1.5e6 (a comprehension over argv that
	// tests each argument against a list); a comprehension over argv
	// nested in another is at 8e8 or more.
	MaxCost = 1e7
	// RuntimeCostLimit stops an evaluation of a rule whose worst case is
	// above it.
	RuntimeCostLimit = 1e7
)

// runtimeCostLimit is RuntimeCostLimit; tests lower it.
var runtimeCostLimit uint64 = RuntimeCostLimit

// Size bounds the estimate assumes.
const (
	maxStringSize = 16384 // VIGIL_ARGS_MAX: one argument can be all of argv
	maxListSize   = 16384 // as many empty arguments
	maxAncestors  = 64
	// maxItemSize is an item of a list of strings. The items of argv
	// share its 16 KiB: there can be 16,384 of them, or one of 16 KiB, not
	// both. maxListSize items of maxItemSize bytes bound any work linear
	// in the total bytes (n + bytes/10 <= maxListSize*(1+maxItemSize/10)
	// for any n <= maxListSize), which is what a comprehension that scans
	// each argument does.
	maxItemSize = 64
)

// estimator gives CEL the sizes of Vigil's fields and of the rule files'
// lists, and the cost of the functions env.go adds.
type estimator struct {
	lists map[string]*listDef
}

// list is the rule file's list n refers to, if it names one.
func (e estimator) list(n checker.AstNode) *listDef {
	if p := n.Path(); len(p) == 1 {
		return e.lists[p[0]]
	}
	if x := n.Expr(); x != nil && x.Kind() == celast.IdentKind {
		return e.lists[x.AsIdent()]
	}
	return nil
}

// EstimateSize implements checker.CostEstimator.
func (e estimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	if l := e.list(n); l != nil {
		return &checker.SizeEstimate{Min: uint64(len(l.items)), Max: uint64(len(l.items))}
	}
	t := n.Type()
	p := n.Path()
	switch {
	case (t.IsExactType(types.StringType) || t.IsExactType(types.BytesType)) && len(p) > 0 && p[len(p)-1] == "@items":
		return &checker.SizeEstimate{Min: 0, Max: maxItemSize}
	case t.IsExactType(types.StringType), t.IsExactType(types.BytesType):
		return &checker.SizeEstimate{Min: 0, Max: maxStringSize}
	case t.Kind() == types.ListKind:
		if len(p) > 0 && p[len(p)-1] == "ancestors" {
			return &checker.SizeEstimate{Min: 0, Max: maxAncestors}
		}
		return &checker.SizeEstimate{Min: 0, Max: maxListSize}
	case t.Kind() == types.MapKind:
		return &checker.SizeEstimate{Min: 0, Max: maxListSize}
	}
	return nil
}

// EstimateCallCost implements checker.CostEstimator.
func (e estimator) EstimateCallCost(fn, overload string, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	strSize := func(n checker.AstNode) uint64 {
		if s := n.ComputedSize(); s != nil {
			return s.Max
		}
		return maxStringSize
	}
	switch fn {
	case "basename", "dirname":
		if len(args) == 1 {
			return &checker.CallEstimate{CostEstimate: checker.CostEstimate{Min: 1, Max: 1 + strSize(args[0])/10}}
		}
	case "startsWithAny", "endsWithAny", "containsAny":
		if target == nil || len(args) != 1 {
			return nil
		}
		// One test per item, each scanning the string (or the item, for a
		// prefix or suffix) once.
		n, item := uint64(maxListSize), uint64(maxStringSize)
		if l := e.list(args[0]); l != nil {
			n, item = uint64(len(l.items)), 0
			for _, it := range l.items {
				item = max(item, uint64(len(it)))
			}
		} else if x := args[0].Expr(); x != nil && x.Kind() == celast.ListKind {
			n, item = uint64(len(x.AsList().Elements())), 0
			for _, el := range x.AsList().Elements() {
				if el.Kind() != celast.LiteralKind {
					item = maxStringSize
					break
				}
				if str, ok := el.AsLiteral().(types.String); ok {
					item = max(item, uint64(len(str)))
				}
			}
		}
		per := 1 + min(strSize(*target), item)/10
		if fn == "containsAny" {
			per = 1 + (strSize(*target)+item)/10
		}
		return &checker.CallEstimate{CostEstimate: checker.CostEstimate{Min: 1, Max: satMul(n, per)}}
	}
	return nil
}

// actualCost is the runtime counterpart of EstimateCallCost, for the
// functions env.go adds (CEL charges 1 for a call it does not know).
type actualCost struct{}

// CallCost implements interpreter.ActualCostEstimator.
func (actualCost) CallCost(fn, overload string, args []ref.Val, result ref.Val) *uint64 {
	size := func(v ref.Val) uint64 {
		if s, ok := v.(types.String); ok {
			return uint64(len(s))
		}
		return 0
	}
	var c uint64
	switch fn {
	case "basename", "dirname":
		if len(args) == 1 {
			c = 1 + size(args[0])/10
		}
	case "startsWithAny", "endsWithAny", "containsAny":
		if len(args) == 2 {
			n := uint64(1)
			if l, ok := args[1].(traits.Sizer); ok {
				if i, ok := l.Size().(types.Int); ok {
					n = uint64(i)
				}
			}
			c = n * (1 + size(args[0])/10)
		}
	default:
		return nil
	}
	return &c
}

func satMul(a, b uint64) uint64 {
	if a != 0 && b > math.MaxUint64/a {
		return math.MaxUint64
	}
	return a * b
}

// estimate is the worst-case cost of a checked condition.
func (c *compiler) estimate(ast *cel.Ast) (uint64, error) {
	est, err := c.env.EstimateCost(ast, estimator{lists: c.lists})
	if err != nil {
		return 0, err
	}
	return est.Max, nil
}

// costString writes a cost for people: 3.2e+07, or "unbounded".
func costString(c uint64) string {
	if c == math.MaxUint64 {
		return "unbounded"
	}
	if c < 1e6 {
		return strconv.FormatUint(c, 10)
	}
	return strconv.FormatFloat(float64(c), 'e', 1, 64)
}

// costLimited reports whether err is an evaluation stopped by the
// runtime cost limit.
func costLimited(err error) bool {
	var ec interpreter.EvalCancelledError
	return errors.As(err, &ec) && ec.Cause == interpreter.CostLimitExceeded
}
