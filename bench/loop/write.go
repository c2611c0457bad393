package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// writeLoop makes n files of 64 KiB in dir, each written in 16 writes of 4
// KiB of text and closed (a write-heavy workload: every file is tracked,
// sampled and reported by the ransomware sensor), removing them as it goes.
func writeLoop(n int, dir string) error {
	buf := []byte(strings.Repeat("quarterly report draft, revenue by region. ", 100)[:4096])
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("f%d.txt", i%64))
		fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		for range 16 {
			if _, err := syscall.Write(fd, buf); err != nil {
				return err
			}
		}
		syscall.Close(fd)
	}
	for i := range 64 {
		os.Remove(filepath.Join(dir, fmt.Sprintf("f%d.txt", i)))
	}
	return nil
}

// devnullLoop writes 64 bytes to /dev/null n times: the writes every
// process makes to things that are not regular files opened for writing,
// which the sensor filters with one failed lookup.
func devnullLoop(n int) error {
	fd, err := syscall.Open("/dev/null", syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	buf := make([]byte, 64)
	for range n {
		if _, err := syscall.Write(fd, buf); err != nil {
			return err
		}
	}
	return nil
}
