// Command stormload is one worker of bench/storm.sh: it repeats one kind of
// activity (test/storm) for a while and prints what it did as JSON.
//
//	stormload open|connect|exec DIR DURATION
//	stormload watch-writes          the built-in list of watched directories
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/vigilsec/vigil/internal/sensor/file"
	"github.com/vigilsec/vigil/test/storm"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "watch-writes" {
		for _, p := range file.DefaultWatchedWrites {
			fmt.Println(p)
		}
		return
	}
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: stormload open|connect|exec DIR DURATION")
		os.Exit(2)
	}
	d, err := time.ParseDuration(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "stormload:", err)
		os.Exit(2)
	}
	c, err := storm.Run(os.Args[1], os.Args[2], d)
	json.NewEncoder(os.Stdout).Encode(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stormload:", err)
		os.Exit(1)
	}
}
