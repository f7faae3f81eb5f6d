// Package workerbin finds the understudy-worker executable for tests and
// tools: $UNDERSTUDY_WORKER, else bin/understudy-worker at the module root,
// built with `make worker` on first use.
package workerbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

var (
	once sync.Once
	path string
	err  error
)

// Path returns the worker's path, building it if needed.
func Path() (string, error) {
	once.Do(func() {
		if p := os.Getenv("UNDERSTUDY_WORKER"); p != "" {
			path = p
			return
		}
		root, e := moduleRoot()
		if e != nil {
			err = e
			return
		}
		out, e := exec.Command("make", "-C", root, "worker").CombinedOutput()
		if e != nil {
			err = fmt.Errorf("make worker: %v\n%s", e, out)
			return
		}
		path = filepath.Join(root, "bin", "understudy-worker")
	})
	return path, err
}

// ModuleRoot is the directory holding go.mod, found from the working directory up.
func ModuleRoot() (string, error) { return moduleRoot() }

func moduleRoot() (string, error) {
	dir, e := os.Getwd()
	if e != nil {
		return "", e
	}
	for {
		if _, e := os.Stat(filepath.Join(dir, "go.mod")); e == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

var (
	hostOnce sync.Once
	hostPath string
	hostErr  error
)

// HostPath returns bin/understudy at the module root, brought up to date
// with `make` on first use (a no-op under `make test`, which built it), for
// tests that run the CLI as the user does: as a process of its own.
func HostPath() (string, error) {
	hostOnce.Do(func() {
		root, e := moduleRoot()
		if e != nil {
			hostErr = e
			return
		}
		out, e := exec.Command("make", "-s", "-C", root, "bin/understudy").CombinedOutput()
		if e != nil {
			hostErr = fmt.Errorf("make bin/understudy: %v\n%s", e, out)
			return
		}
		hostPath = filepath.Join(root, "bin", "understudy")
	})
	return hostPath, hostErr
}

// BuildUser builds a worker carrying the user kernel in kernel (a C file,
// absolute or relative to the module root) into out, the way a kernel
// author does: `make user-worker KERNEL=kernel OUT=out` at the module root.
func BuildUser(kernel, out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("make", "-s", "user-worker", "KERNEL="+kernel, "OUT="+out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make user-worker KERNEL=%s OUT=%s: %v\n%s", kernel, out, err, b)
	}
	return nil
}
