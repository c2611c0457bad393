package testenv

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var words = strings.Fields(`the of and to in is was that for on with as by at from his her an which or be are
this had not but were their have it one all been has more when there who will would can out if about what
report invoice budget meeting project customer contract quarter revenue summary draft final review notes`)

// GenerateDocs writes n text files of 1 to 16 KiB of words into dir, in a
// few subdirectories, as a user's documents (low-entropy data), and returns
// their paths. The contents are reproducible from seed.
func GenerateDocs(t testing.TB, dir string, n int, seed uint64) []string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	exts := []string{".txt", ".docx", ".csv", ".md"}
	var paths []string
	for i := 0; i < n; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("folder%d", i%5))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		size := 1024 + r.IntN(15*1024)
		for sb.Len() < size {
			sb.WriteString(words[r.IntN(len(words))])
			if r.IntN(12) == 0 {
				sb.WriteString(".\n")
			} else {
				sb.WriteByte(' ')
			}
		}
		p := filepath.Join(sub, fmt.Sprintf("doc%03d%s", i, exts[i%len(exts)]))
		if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// BuildTool builds a main package of this module (a path relative to the
// module root, such as "test/ransomsim") into a temporary directory and
// returns the binary's path.
func BuildTool(t testing.TB, pkg string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, "./"+pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}
