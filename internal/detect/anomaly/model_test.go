package anomaly

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// server makes a normal trace: requests that each read, stat and write,
// with some variation in how many reads.
func server(r *rand.Rand, requests int) []uint16 {
	t := []uint16{59, 12, 9, 21, 257, 5, 9, 3} // exec, brk, mmap, access, openat, fstat, mmap, close
	for range requests {
		t = append(t, 43) // accept
		for range 1 + r.IntN(3) {
			t = append(t, 0) // read
		}
		t = append(t, 257, 5, 0, 3, 1, 3) // openat, fstat, read, close, write, close
	}
	return append(t, 231) // exit_group
}

func normalTraces(seed uint64, n int) [][]uint16 {
	r := rand.New(rand.NewPCG(seed, 1))
	var out [][]uint16
	for range n {
		out = append(out, server(r, 5+r.IntN(20)))
	}
	return out
}

// shell is the same server, but one request forks a shell on the socket.
func shell(r *rand.Rand) []uint16 {
	t := server(r, 5)
	t = t[:len(t)-1]
	t = append(t, 43, 0, 56, 33, 33, 33, 59, 12, 9, 21, 257, 5, 9, 3, 0, 1, 0, 1, 61)
	return append(t, server(r, 3)[8:]...)
}

func TestPackUnpack(t *testing.T) {
	w := []uint16{0, 1, 1023, 59, 435, 7}
	if got := unpack(pack(w), 6); !cmp.Equal(got, w) {
		t.Errorf("unpack(pack(%v)) = %v", w, got)
	}
	if pack([]uint16{1, 2}) == pack([]uint16{2, 1}) {
		t.Error("order does not change the key")
	}
}

func TestScores(t *testing.T) {
	m, err := NewModel(DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range normalTraces(1, 50) {
		m.Learn(tr)
	}
	r := rand.New(rand.NewPCG(9, 9))
	for i, tr := range normalTraces(2, 20) {
		if s := m.Score(tr); s > 0.2 {
			t.Errorf("normal trace %d scores %.3f", i, s)
		}
	}
	attack := shell(r)
	if s := m.Score(attack); s < 0.4 {
		t.Errorf("shell trace scores %.3f, want a high score", s)
	}
	// The frame's unusual n-grams name the shell's syscalls.
	st := m.NewStream()
	best, unusual := 0.0, [][]uint16(nil)
	for _, x := range attack {
		if v, ok := st.Add(x); ok && v > best {
			best, unusual = v, st.Unusual()
		}
	}
	found := false
	for _, g := range unusual {
		for _, x := range g {
			if x == 59 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("unusual n-grams of the worst frame %v do not include the execve", unusual)
	}
}

func TestRareGramsWeighLessThanUnseen(t *testing.T) {
	m, _ := NewModel(Params{N: 2, Frame: 1})
	m.Learn([]uint16{1, 2, 1, 2, 1, 2, 3, 4})
	for _, tc := range []struct {
		trace []uint16
		want  float64
	}{
		{[]uint16{1, 2}, 1.0 / 4}, // seen 3 times
		{[]uint16{3, 4}, 1.0 / 2}, // once
		{[]uint16{4, 5}, 1},       // never
	} {
		if got := m.Score(tc.trace); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Score(%v) = %v, want %v", tc.trace, got, tc.want)
		}
	}
}

func TestCalibrate(t *testing.T) {
	var s []float64
	for i := range 100 {
		s = append(s, float64(i)/100)
	}
	th := Calibrate(s, 0.05)
	above := 0
	for _, x := range s {
		if x > th {
			above++
		}
	}
	if above != 5 {
		t.Errorf("threshold %.2f leaves %d of 100 above, want 5", th, above)
	}
	if th := Calibrate([]float64{0, 0, 0}, 0.01); th != 0 {
		t.Errorf("threshold over zeros = %v", th)
	}
}

func TestEvaluate(t *testing.T) {
	r := Evaluate([]float64{0, 0.1, 0.2}, []float64{0.5, 0.9}, 0.3)
	if r.AUC != 1 || r.DetectionRate != 1 || r.FalseAlarmRate != 0 {
		t.Errorf("separable: %+v", r)
	}
	r = Evaluate([]float64{0.5, 0.5}, []float64{0.5, 0.5}, 0.4)
	if r.AUC != 0.5 || r.DetectionRate != 1 || r.FalseAlarmRate != 1 {
		t.Errorf("ties: %+v", r)
	}
	r = Evaluate([]float64{0.1, 0.4}, []float64{0.2, 0.5}, 0.3)
	if r.AUC != 0.75 || r.DetectionRate != 0.5 || r.FalseAlarmRate != 0.5 {
		t.Errorf("mixed: %+v", r)
	}
}

func TestTrainCalibratesOnUnseenTraces(t *testing.T) {
	train := normalTraces(3, 100)
	m, err := Train(train, DefaultParams, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	var normal, attack []float64
	for _, tr := range normalTraces(4, 200) {
		normal = append(normal, m.Score(tr))
	}
	r := rand.New(rand.NewPCG(5, 5))
	for range 50 {
		attack = append(attack, m.Score(shell(r)))
	}
	rates := Evaluate(normal, attack, m.Threshold)
	if rates.FalseAlarmRate > 0.1 || rates.DetectionRate < 0.95 || rates.AUC < 0.95 {
		t.Errorf("threshold %.3f: %+v", m.Threshold, rates)
	}
	if _, err := Train(train[:3], DefaultParams, 0.05); err == nil {
		t.Error("Train on 3 traces succeeded")
	}
}

func TestModelJSON(t *testing.T) {
	m, _ := NewModel(Params{N: 3, Frame: 5})
	m.Learn([]uint16{1, 2, 3, 4, 1, 2, 3})
	m.Threshold = 0.25
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var got Model
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, &got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"n":3,"frame":5,"grams":[[1,2,3]]}`), &got); err == nil {
		t.Error("a gram without its count was accepted")
	}
	if err := json.Unmarshal([]byte(`{"n":9,"frame":5}`), &got); err == nil || !strings.Contains(err.Error(), "2..6") {
		t.Errorf("n = 9: %v", err)
	}
}

func TestReadTrace(t *testing.T) {
	got, err := ReadTrace("t.txt", strings.NewReader("6 6 63\n 42 120\t6 \n"))
	if err != nil || !cmp.Equal(got, []uint16{6, 6, 63, 42, 120, 6}) {
		t.Errorf("ReadTrace = %v, %v", got, err)
	}
	_, err = ReadTrace("t.txt", strings.NewReader("6 6\n1 abc 2\n"))
	if err == nil || err.Error() != `t.txt:2:3: "abc" is not a syscall number (0..1023)` {
		t.Errorf("err = %v", err)
	}
	_, err = ReadTrace("t.txt", strings.NewReader("99999"))
	if err == nil || !strings.Contains(err.Error(), "t.txt:1:1") {
		t.Errorf("err = %v", err)
	}
}
