package main

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/understudy-rt/understudy/engine"
	"io"
	"strconv"
	"strings"
	"sync"
)

// controlHelp is the live control's syntax, for run's usage and the
// answer to a line it cannot read.
const controlHelp = `Live control (stdin, one command a line):
  set LANE KERNEL NAME=VALUE [NAME=VALUE ...]
      change kernel KERNEL (from 0, in chain order) of lane LANE, from the
      next block boundary the clock can reach (a few blocks); gain ramps
  # comment, or an empty line: ignored
Each line is answered on stderr with one line: the block each change
applies from, or why it was refused (the run goes on).
`

// controlCmd is one parsed control line; an empty one (no Sets) does nothing.
type controlCmd struct {
	Lane, Kernel int
	Sets         []controlSet
}

type controlSet struct {
	Name  string
	Value float64
}

// parseControl reads one control line. Errors are one line, and name the
// word at fault.
func parseControl(line string) (controlCmd, error) {
	var c controlCmd
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	w := strings.Fields(line)
	if len(w) == 0 {
		return c, nil
	}
	if w[0] != "set" {
		return c, fmt.Errorf("unknown command %q; write: set LANE KERNEL NAME=VALUE", w[0])
	}
	if len(w) < 4 {
		return c, fmt.Errorf("set wants a lane, a kernel and at least one NAME=VALUE, e.g. set 0 1 db=-6")
	}
	var err error
	if c.Lane, err = strconv.Atoi(w[1]); err != nil || c.Lane < 0 {
		return c, fmt.Errorf("lane %q is not a lane number (0, 1, ...)", w[1])
	}
	if c.Kernel, err = strconv.Atoi(w[2]); err != nil || c.Kernel < 0 {
		return c, fmt.Errorf("kernel %q is not a kernel's place in the chain (0, 1, ...)", w[2])
	}
	for _, kv := range w[3:] {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return c, fmt.Errorf("%q: want NAME=VALUE, e.g. f=2000", kv)
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return c, fmt.Errorf("%q: %s wants a number, got %q", kv, name, val)
		}
		c.Sets = append(c.Sets, controlSet{name, v})
	}
	return c, nil
}

// errControlStopped ends runControl: the run is over.
var errControlStopped = errors.New("the run has ended")

// runControl reads control lines from r until it ends or set says the run
// has (errControlStopped), applying each through set and answering each on
// w with one line.
func runControl(r io.Reader, w io.Writer, set func(lane, kernel int, name string, v float64) (uint64, error)) {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		c, err := parseControl(sc.Text())
		if err != nil {
			fmt.Fprintf(w, "understudy: control line %d: %v\n", n, err)
			continue
		}
		for _, s := range c.Sets {
			at, err := set(c.Lane, c.Kernel, s.Name, s.Value)
			if errors.Is(err, errControlStopped) {
				return
			}
			if err != nil {
				fmt.Fprintf(w, "understudy: control line %d: %v\n", n, err)
				break // the rest of the line waits for the user to fix it
			}
			fmt.Fprintf(w, "understudy: lane %d kernel %d: %s=%g from block %d\n", c.Lane, c.Kernel, s.Name, s.Value, at)
		}
	}
}

// startControl reads the live control from r on a goroutine of its own,
// changing the session's parameters. Once the returned stop has returned,
// it changes nothing more (a change in progress completes first); a read
// blocked on r is left to end with the process.
func startControl(r io.Reader, w io.Writer, sess *engine.Session) func() {
	p, err := sess.Params()
	if err != nil {
		fmt.Fprintf(w, "understudy: warning: no live control: %v\n", err)
		return func() {}
	}
	var mu sync.Mutex
	stopped := false
	go runControl(r, w, func(lane, kernel int, name string, v float64) (uint64, error) {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return 0, errControlStopped
		}
		return p.Set(lane, kernel, name, v)
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
	}
}
