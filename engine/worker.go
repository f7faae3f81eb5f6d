package engine

import (
	"os"
	"os/exec"
	"path/filepath"
)

// WorkerEnv names the environment variable that, when set, is the worker
// executable every session uses unless its Config names one.
const WorkerEnv = "UNDERSTUDY_WORKER"

// WorkerPath is the understudy-worker a session uses when its Config names
// none: $UNDERSTUDY_WORKER, else the one beside this program (a built tree,
// or `make install PREFIX=...`, which puts both in PREFIX/bin), else the
// first on $PATH. When none exists it returns "understudy-worker", and New
// says how to build one.
func WorkerPath() string {
	if p := os.Getenv(WorkerEnv); p != "" {
		return p
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "understudy-worker")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("understudy-worker"); err == nil {
		return p
	}
	return "understudy-worker"
}
