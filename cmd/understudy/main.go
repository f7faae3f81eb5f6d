// Command understudy runs C DSP kernels in crash-isolated worker processes
// with hot-standby failover.
//
//	understudy demo      kill workers while audio plays; prove nothing was lost
//	understudy run       run lanes live as a JACK client until stopped
//	understudy process   render a WAV file through supervised workers
//	understudy kernels   list the kernels and the variants this CPU runs
//	understudy doctor    check the machine for real-time audio, with fixes
//	understudy worker-path  print the worker executable it would use
//	understudy version   print the version and the layout/ABI it speaks
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/understudy-rt/understudy/engine"
	"github.com/understudy-rt/understudy/runtime/shm"
	"github.com/understudy-rt/understudy/supervisor"
)

// version is set by the build (-ldflags "-X main.version=...").
var version = "0.1.0-dev"

const usage = `understudy — run real-time C DSP kernels so that a crashing, hanging or
misbehaving kernel never interrupts the audio.

Usage:
  understudy demo [flags]     run the built-in failover scenario (see understudy demo --help)
  understudy run --backend jack [flags]  run lanes live as a JACK client (see understudy run --help)
  understudy process [flags]  render a WAV file through a chain of kernels in supervised workers
  understudy replay FILE --worker W  run a saved poison block again, for gdb (see understudy replay --help)
  understudy kernels          list the kernels, their parameters and the variants this CPU runs
  understudy doctor [flags]   check this machine and user for real-time audio, with fixes
  understudy worker-path      print the understudy-worker it would use, and check it
  understudy version          print version, region layout and kernel ABI
  understudy help             this text

Exit status: 0 success, 1 the run failed (for process: also when blocks were
bypassed, unless --allow-bypass), 2 bad usage or input, 128+N stopped by
signal N (SIGINT 130, SIGTERM 143).
`

// usageError is bad input from the user: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "demo":
		err = runDemo(args[1:], stdout, stderr)
	case "run":
		err = runLive(args[1:], stdout, stderr)
	case "process":
		err = runProcess(args[1:], stdout, stderr)
	case "replay":
		err = runReplay(args[1:], stdout, stderr)
	case "kernels":
		err = runKernels(args[1:], stdout)
	case "doctor":
		err = runDoctor(args[1:], stdout)
	case "worker-path":
		err = runWorkerPath(args[1:], stdout)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "understudy %s (region layout %d, kernel ABI %d)\n", version, shm.LayoutVersion, shm.KernelABI)
	case "help", "--help", "-h", "-help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "understudy: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue *usageError
	var xe *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		return 0
	case errors.As(err, &xe):
		fmt.Fprintf(stderr, "understudy %s: %v\n", args[0], err)
		return xe.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "understudy %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "understudy %s: %v\n", args[0], err)
		return 1
	}
}

var errHelp = errors.New("help shown")

// runWorkerPath prints the worker a session would use ($UNDERSTUDY_WORKER,
// beside this program, then $PATH), once it has checked it runs.
func runWorkerPath(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usagef("worker-path takes no arguments")
	}
	p := engine.WorkerPath()
	if err := supervisor.CheckWorker(p); err != nil {
		return usagef("%v (set $%s to the worker's path, or install both with make install PREFIX=...)", err, engine.WorkerEnv)
	}
	fmt.Fprintln(stdout, p)
	return nil
}
