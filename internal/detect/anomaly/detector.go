package anomaly

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Mode is where a program's profile is in its life.
type Mode uint8

const (
	Learning Mode = iota + 1
	Detecting
)

func (m Mode) String() string {
	switch m {
	case Learning:
		return "learning"
	case Detecting:
		return "detecting"
	}
	return "unknown"
}

// DetectorConfig tunes live learning and detection.
type DetectorConfig struct {
	Params
	// FalseAlarms is the target rate of anomalous batches of normal
	// behaviour, for the threshold.
	FalseAlarms float64
	// Learn is how long a program is learned before detection starts, from
	// its first batch; MinSyscalls is the least it must have made by then.
	Learn       time.Duration
	MinSyscalls int
	// Dir keeps each learned profile as a JSON file, loaded at start; empty:
	// profiles live in memory only.
	Dir string
	// Startup is how many syscalls of a newly started process are its
	// start-up: learned, but neither held out to calibrate on nor judged.
	// A program's start-up runs once per process, so it is mostly never
	// seen again; judging it would make every restart an anomaly.
	Startup int
	// MaxStreams bounds the threads followed at once.
	MaxStreams int
}

// Finding is an anomaly: a thread's frame scored above its program's
// threshold, or the program spawned an executable it never spawned while
// learned.
type Finding struct {
	Program  string
	PID, TID uint32
	// Score and Threshold for a syscall anomaly; Unusual are the n-grams
	// of the frame the program never made while learned.
	Score, Threshold float64
	Unusual          [][]uint16
	// Spawned is the executable of a spawn anomaly.
	Spawned string
}

// Profile is what is known about one program.
type Profile struct {
	ID      uint32
	Program string
	Mode    Mode
	Started time.Time // first batch
	Learned time.Time // when detection started

	model     *Model
	calib     [][]uint16 // batches held out of learning, to calibrate on
	batches   int
	syscalls  uint64
	spawned   map[string]uint64
	anomalies uint64
}

type streamKey struct{ pid, tid uint32 }

type stream struct {
	profile *Profile
	context []uint16 // the last N-1 numbers, for learning across batches
	score   *Stream  // detection
	alerted bool     // above the threshold since the last alert
}

// Detector follows the selected programs' threads, learns each program,
// then detects. It is safe for concurrent use.
type Detector struct {
	cfg DetectorConfig

	mu        sync.Mutex
	profiles  []*Profile // by ID-1
	byProgram map[string]*Profile
	streams   map[streamKey]*stream
	startup   map[uint32]int // pid -> start-up syscalls still to come
}

// maxCalib bounds the batches a learning profile holds out.
const maxCalib = 4096

// NewDetector makes a detector and loads the profiles saved in cfg.Dir.
func NewDetector(cfg DetectorConfig) (*Detector, error) {
	if err := cfg.Params.check(); err != nil {
		return nil, err
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 65536
	}
	d := &Detector{cfg: cfg, byProgram: map[string]*Profile{}, streams: map[streamKey]*stream{}, startup: map[uint32]int{}}
	if cfg.Dir == "" {
		return d, nil
	}
	files, err := filepath.Glob(filepath.Join(cfg.Dir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var s savedProfile
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("anomaly profile %s: %w", f, err)
		}
		if s.Model == nil || s.Program == "" {
			return nil, fmt.Errorf("anomaly profile %s: no program or model", f)
		}
		p := d.add(s.Program)
		p.Mode, p.model, p.Learned, p.Started = Detecting, s.Model, s.Learned, s.Started
		for _, x := range s.Spawned {
			p.spawned[x] = 1
		}
	}
	return d, nil
}

// Profile returns the id of a program's profile, made on first use.
func (d *Detector) Profile(program string) uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.byProgram[program]; ok {
		return p.ID
	}
	return d.add(program).ID
}

func (d *Detector) add(program string) *Profile {
	m, _ := NewModel(d.cfg.Params)
	p := &Profile{ID: uint32(len(d.profiles) + 1), Program: program, Mode: Learning, model: m, spawned: map[string]uint64{}}
	d.profiles = append(d.profiles, p)
	d.byProgram[program] = p
	return p
}

func (d *Detector) profile(id uint32) *Profile {
	if id == 0 || int(id) > len(d.profiles) {
		return nil
	}
	return d.profiles[id-1]
}

// Batch is what the kernel sends: one thread's next syscall numbers.
type Batch struct {
	Profile  uint32
	PID, TID uint32
	Nr       []uint16
	Gap      bool // the thread's previous batch was lost
	End      bool // the thread exec'd or exited: its stream ends
}

// Feed takes a batch; anomalies go to found.
func (d *Detector) Feed(now time.Time, b Batch, found func(Finding)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.profile(b.Profile)
	if p == nil {
		return
	}
	key := streamKey{b.PID, b.TID}
	s := d.streams[key]
	if s == nil || s.profile != p {
		if len(d.streams) >= d.cfg.MaxStreams {
			for k := range d.streams { // drop any one
				delete(d.streams, k)
				break
			}
		}
		s = &stream{profile: p}
		d.streams[key] = s
	}
	if b.Gap {
		s.context = s.context[:0]
		if s.score != nil {
			s.score.Reset()
		}
	}
	if p.Started.IsZero() {
		p.Started = now
	}
	p.syscalls += uint64(len(b.Nr))
	starting := false
	if left, ok := d.startup[b.PID]; ok {
		starting = true
		if left -= len(b.Nr); left > 0 {
			d.startup[b.PID] = left
		} else {
			delete(d.startup, b.PID)
		}
	}
	switch p.Mode {
	case Learning:
		d.learn(p, s, b.Nr, starting)
		if now.Sub(p.Started) >= d.cfg.Learn && p.syscalls >= uint64(d.cfg.MinSyscalls) {
			d.finishLearning(now, p)
		}
	case Detecting:
		d.detect(p, s, b, starting, found)
	}
	if b.End {
		delete(d.streams, key)
	}
}

// Started says that pid is a process that has just started a program (an
// exec, not a fork): its first Startup syscalls are its start-up.
func (d *Detector) Started(pid uint32) {
	if d.cfg.Startup <= 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.startup) >= d.cfg.MaxStreams {
		for k := range d.startup {
			delete(d.startup, k)
			break
		}
	}
	d.startup[pid] = d.cfg.Startup
}

// learn adds a batch to the profile, or every fifth past start-up to the
// held-out set.
func (d *Detector) learn(p *Profile, s *stream, nr []uint16, starting bool) {
	seg := append(slices.Clone(s.context), nr...)
	if !starting {
		p.batches++
	}
	if !starting && p.batches%Folds == 0 && len(p.calib) < maxCalib {
		p.calib = append(p.calib, seg)
	} else {
		p.model.Learn(seg)
	}
	keep := min(len(seg), p.model.N-1)
	s.context = append(s.context[:0], seg[len(seg)-keep:]...)
}

// finishLearning calibrates on the held-out batches, learns them too, and
// starts detection.
func (d *Detector) finishLearning(now time.Time, p *Profile) {
	scores := make([]float64, 0, len(p.calib))
	for _, seg := range p.calib {
		scores = append(scores, p.model.Score(seg))
	}
	for _, seg := range p.calib {
		p.model.Learn(seg)
	}
	p.model.Threshold = Calibrate(scores, d.cfg.FalseAlarms)
	p.calib = nil
	p.Mode, p.Learned = Detecting, now
	for k, s := range d.streams {
		if s.profile == p {
			delete(d.streams, k) // start scoring afresh
		}
	}
	if d.cfg.Dir != "" {
		d.save(p) // best effort: the profile works in memory regardless
	}
}

func (d *Detector) detect(p *Profile, s *stream, b Batch, starting bool, found func(Finding)) {
	if s.score == nil {
		s.score = p.model.NewStream()
	}
	for _, x := range b.Nr {
		v, ok := s.score.Add(x)
		if ok && !starting {
			d.judge(p, s, b, v, found)
		}
	}
	// A thread that ends before it filled a frame (a child that execs
	// soon after its fork) is judged on the n-grams it made.
	if st := s.score; b.End && !starting && st.grams > 0 && st.grams < len(st.frame) {
		d.judge(p, s, b, st.sum/float64(st.grams), found)
	}
}

// judge reports a frame above the threshold, once per run of such frames.
func (d *Detector) judge(p *Profile, s *stream, b Batch, score float64, found func(Finding)) {
	if score <= p.model.Threshold {
		s.alerted = false
		return
	}
	if s.alerted {
		return
	}
	s.alerted = true
	p.anomalies++
	found(Finding{Program: p.Program, PID: b.PID, TID: b.TID, Score: score, Threshold: p.model.Threshold, Unusual: s.score.Unusual()})
}

// Lookup returns the id of a program's profile, if it has one.
func (d *Detector) Lookup(program string) (uint32, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.byProgram[program]
	if !ok {
		return 0, false
	}
	return p.ID, true
}

// Spawn tells the detector that a process of the program exec'd exe. While
// learning it is remembered; once detecting, an executable the program never
// spawned is an anomaly.
func (d *Detector) Spawn(id uint32, pid uint32, exe string, found func(Finding)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.profile(id)
	if p == nil {
		return
	}
	switch p.Mode {
	case Learning:
		p.spawned[exe]++
	case Detecting:
		if p.spawned[exe] == 0 {
			p.anomalies++
			found(Finding{Program: p.Program, PID: pid, Spawned: exe})
		}
	}
}

// savedProfile is a profile on disk, and what export and import carry.
type savedProfile struct {
	Program string    `json:"program"`
	Started time.Time `json:"started"`
	Learned time.Time `json:"learned"`
	Spawned []string  `json:"spawned"`
	Model   *Model    `json:"model"`
}

func (d *Detector) save(p *Profile) error {
	s := savedProfile{Program: p.Program, Started: p.Started, Learned: p.Learned, Model: p.model}
	for x := range p.spawned {
		s.Spawned = append(s.Spawned, x)
	}
	slices.Sort(s.Spawned)
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.cfg.Dir, 0o700); err != nil {
		return err
	}
	name := filepath.Join(d.cfg.Dir, profileFile(p.Program))
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// profileFile names a program's file: its path with / as _, and a hash
// suffix would be overkill; paths are unique and short enough.
func profileFile(program string) string {
	return strings.ReplaceAll(strings.TrimPrefix(program, "/"), "/", "_") + ".json"
}

// ProfileStatus is a profile as status shows it.
type ProfileStatus struct {
	Program   string  `json:"program"`
	Mode      string  `json:"mode"`
	Syscalls  uint64  `json:"syscalls"`
	Grams     int     `json:"grams"`
	Threshold float64 `json:"threshold,omitempty"`
	Spawned   int     `json:"spawned"`
	Anomalies uint64  `json:"anomalies"`
}

// Status describes every profile.
func (d *Detector) Status() []ProfileStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []ProfileStatus
	for _, p := range d.profiles {
		out = append(out, ProfileStatus{Program: p.Program, Mode: p.Mode.String(), Syscalls: p.syscalls,
			Grams: len(p.model.Grams), Threshold: p.model.Threshold, Spawned: len(p.spawned), Anomalies: p.anomalies})
	}
	return out
}

// ErrUnknownProgram is returned for a program the detector has no profile of.
var ErrUnknownProgram = errors.New("no profile of that program")

// Detect ends learning of a program now, as if its learning time were up.
func (d *Detector) Detect(now time.Time, program string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.byProgram[program]
	if !ok {
		return ErrUnknownProgram
	}
	if p.Mode == Learning {
		d.finishLearning(now, p)
	}
	return nil
}
