package anomaly

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// ReadTrace reads a trace in the ADFA-LD format: syscall numbers separated
// by white space. Errors name the file, line and token.
func ReadTrace(name string, r io.Reader) ([]uint16, error) {
	var t []uint16
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		col := 1
		b := sc.Bytes()
		for i := 0; i < len(b); {
			for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r') {
				i++
			}
			j := i
			for j < len(b) && b[j] != ' ' && b[j] != '\t' && b[j] != '\r' {
				j++
			}
			if j > i {
				col = i + 1
				n, err := strconv.ParseUint(string(b[i:j]), 10, 16)
				if err != nil || n >= MaxSyscall {
					return nil, fmt.Errorf("%s:%d:%d: %q is not a syscall number (0..%d)", name, line, col, b[i:j], MaxSyscall-1)
				}
				t = append(t, uint16(n))
			}
			i = j
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// ReadTraces reads trace files, and the *.txt files of directories, in
// lexical order, returning the traces and their file names.
func ReadTraces(paths ...string) (traces [][]uint16, names []string, err error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		m, err := filepath.Glob(filepath.Join(p, "*.txt"))
		if err != nil {
			return nil, nil, err
		}
		sort.Strings(m)
		files = append(files, m...)
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, nil, err
		}
		t, err := ReadTrace(f, fh)
		fh.Close()
		if err != nil {
			return nil, nil, err
		}
		traces = append(traces, t)
		names = append(names, f)
	}
	return traces, names, nil
}

// WriteTrace writes a trace in the ADFA-LD format.
func WriteTrace(w io.Writer, t []uint16) error {
	bw := bufio.NewWriter(w)
	for i, x := range t {
		if i > 0 {
			bw.WriteByte(' ')
		}
		bw.WriteString(strconv.Itoa(int(x)))
	}
	bw.WriteByte('\n')
	return bw.Flush()
}
