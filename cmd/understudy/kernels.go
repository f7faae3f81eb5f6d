package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/understudy-rt/understudy/runtime/catalog"
)

const kernelsUsage = `Usage: understudy kernels [--worker PATH]

Lists every kernel the worker carries: its parameters with units, ranges and
defaults, and its variants, marking those this CPU can run and the one
--variant auto picks.

` + chainHelp

func runKernels(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kernels", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var worker string
	fs.StringVar(&worker, "worker", "", "understudy-worker executable (default: beside this program, then $PATH)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, kernelsUsage)
			return errHelp
		}
		return usagef("%v (see understudy kernels --help)", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (see understudy kernels --help)", fs.Arg(0))
	}
	if worker == "" {
		worker = defaultWorker()
	}
	cat, err := loadCatalog(worker, false)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kernels in %s (* = this CPU runs it, > = what --variant auto picks; live = run's stdin control can change it while the lane plays)\n\n", cat.Worker)
	for _, k := range cat.Kernels() {
		printKernel(stdout, k)
	}
	return nil
}

func printKernel(w io.Writer, k *catalog.Kernel) {
	fmt.Fprintf(w, "%s — %s\n", k.Name, k.Summary)
	for _, p := range k.Params {
		kind := "number"
		if p.Integer {
			kind = "integer"
		}
		unit := ""
		if p.Unit != "" {
			unit = " " + p.Unit
		}
		live := ""
		if p.Live {
			live = ", live"
		}
		fmt.Fprintf(w, "    %-9s %-7s %g..%g%s, default %g%s\n", p.Name, kind, p.Min, p.Max, unit, p.Default, live)
	}
	best := k.Best()
	var vs []string
	for _, v := range k.Variants {
		mark := ""
		if v.Supported {
			mark = "*"
		}
		if v.Name == best {
			mark = ">" + mark
		}
		vs = append(vs, mark+v.Name)
	}
	fmt.Fprintf(w, "    variants: %s\n\n", strings.Join(vs, " "))
}
