// Command report turns `go test -bench` output into bench/results.json and a
// Markdown table, so every figure in them comes from one run:
//
//	go test -run '^$' -bench . ./cdsp ./bench | go run ./bench/report -json bench/results.json -md bench/RESULTS.md
//
// Benchmark names follow Benchmark<Group>/<name>/<variant>/frames=<n>[/...];
// a name that does not is kept with what could be read of it.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Record is one benchmark result.
type Record struct {
	Group       string             `json:"group"`
	Name        string             `json:"name"`
	Variant     string             `json:"variant"`
	Frames      int                `json:"frames,omitempty"`
	Extra       string             `json:"extra,omitempty"` // further path elements, e.g. taps=512
	Iterations  int                `json:"iterations"`
	NsPerOp     float64            `json:"ns_per_op"`
	NsPerSample float64            `json:"ns_per_sample,omitempty"`
	NsP50       float64            `json:"ns_p50,omitempty"`
	NsP99       float64            `json:"ns_p99,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	Package     string             `json:"package,omitempty"`
	CPU         string             `json:"cpu,omitempty"` // go test's "cpu:" line: the model name
	// FTZDAZ: the benchmark ran with flush-to-zero and denormals-are-zero
	// set on its thread (it reports the metric ftz-daz=1), as workers run.
	FTZDAZ bool `json:"ftz_daz"`
}

var line = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+(\d+)\s+([0-9.]+) ns/op(.*)$`)

func parse(r io.Reader) ([]Record, []string) {
	var recs []Record
	var env []string
	var pkg, cpu string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		t := sc.Text()
		if v, ok := strings.CutPrefix(t, "pkg: "); ok {
			pkg = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(t, "cpu: "); ok {
			cpu = strings.TrimSpace(v)
		}
		for _, p := range []string{"goos:", "goarch:", "cpu:"} {
			if strings.HasPrefix(t, p) && !contains(env, strings.TrimSpace(t)) {
				env = append(env, strings.TrimSpace(t))
			}
		}
		m := line.FindStringSubmatch(t)
		if m == nil {
			continue
		}
		parts := strings.Split(m[1], "/")
		rec := Record{Group: parts[0], Metrics: map[string]float64{}, Package: pkg, CPU: cpu}
		rec.Iterations, _ = strconv.Atoi(m[2])
		rec.NsPerOp, _ = strconv.ParseFloat(m[3], 64)
		var extra []string
		for i, p := range parts[1:] {
			switch {
			case strings.HasPrefix(p, "frames="):
				rec.Frames, _ = strconv.Atoi(strings.TrimPrefix(p, "frames="))
			case i == 0:
				rec.Name = p
			case i == 1:
				rec.Variant = p
			default:
				extra = append(extra, p)
			}
		}
		rec.Extra = strings.Join(extra, "/")
		f := strings.Fields(m[4])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/sample":
				rec.NsPerSample = v
			case "ns-p50":
				rec.NsP50 = v
			case "ns-p99":
				rec.NsP99 = v
			case "ftz-daz":
				rec.FTZDAZ = v != 0
			default:
				rec.Metrics[f[i+1]] = v
			}
		}
		if len(rec.Metrics) == 0 {
			rec.Metrics = nil
		}
		recs = append(recs, rec)
	}
	return recs, env
}

// markdown writes one table per group: a row per name/variant/extra, a column
// per block size, each cell ns/sample (and the ratio to the group's baseline
// row for that block size, when the group has one: the pure Go row).
func markdown(w io.Writer, recs []Record, env []string, cmd, note string) {
	fmt.Fprintf(w, "# Benchmark results\n\nGenerated %s by `%s`", time.Now().UTC().Format("2006-01-02"), cmd)
	if len(env) > 0 {
		fmt.Fprintf(w, " on %s", strings.Join(env, ", "))
	}
	fmt.Fprint(w, ".\n")
	if note != "" {
		fmt.Fprintf(w, "%s\n", note)
	}
	fmt.Fprint(w, "Each cell: ns per sample (lower is better); in brackets, how many times faster than the pure Go row of the same block size.\n")
	groups := map[string][]Record{}
	var order []string
	for _, r := range recs {
		if _, ok := groups[r.Group]; !ok {
			order = append(order, r.Group)
		}
		groups[r.Group] = append(groups[r.Group], r)
	}
	for _, g := range order {
		rs := groups[g]
		frameSet := map[int]bool{}
		type rowKey struct{ name, variant, extra string }
		rows := map[rowKey]map[int]Record{}
		var rowOrder []rowKey
		for _, r := range rs {
			frameSet[r.Frames] = true
			k := rowKey{r.Name, r.Variant, r.Extra}
			if rows[k] == nil {
				rows[k] = map[int]Record{}
				rowOrder = append(rowOrder, k)
			}
			rows[k][r.Frames] = r
		}
		var frames []int
		for f := range frameSet {
			frames = append(frames, f)
		}
		sort.Ints(frames)
		fmt.Fprintf(w, "\n## %s\n\n%s\n\n| name | variant | extra |", g, provenance(rs))
		for _, f := range frames {
			fmt.Fprintf(w, " %d frames |", f)
		}
		fmt.Fprint(w, "\n|---|---|---|")
		for range frames {
			fmt.Fprint(w, "---:|")
		}
		fmt.Fprintln(w)
		for _, k := range rowOrder {
			fmt.Fprintf(w, "| %s | %s | %s |", k.name, k.variant, k.extra)
			for _, f := range frames {
				r, ok := rows[k][f]
				if !ok {
					fmt.Fprint(w, " |")
					continue
				}
				v := r.NsPerSample
				unit := ""
				switch {
				case v == 0 && r.NsP50 > 0:
					v, unit = r.NsP50, " ns p50"
				case v == 0:
					v, unit = r.NsPerOp, " ns/op"
				}
				cell := fmt.Sprintf("%.3g%s", v, unit)
				if base := baseline(rows, k, f); base > 0 && r.NsPerSample > 0 {
					cell += fmt.Sprintf(" (%.2fx)", base/r.NsPerSample)
				}
				fmt.Fprintf(w, " %s |", cell)
			}
			fmt.Fprintln(w)
		}
	}
}

// provenance says where a table's figures came from: the CPU's model name
// (and family/model/stepping, which tell one EPYC generation from another)
// and the floating-point mode its benchmark thread ran in.
func provenance(rs []Record) string {
	var cpus, pkgs []string
	ftz := 0
	for _, r := range rs {
		if r.CPU != "" && !contains(cpus, r.CPU) {
			cpus = append(cpus, r.CPU)
		}
		if r.Package != "" && !contains(pkgs, r.Package) {
			pkgs = append(pkgs, r.Package)
		}
		if r.FTZDAZ {
			ftz++
		}
	}
	cpu := strings.Join(cpus, ", ")
	if cpu == "" {
		cpu = "unknown"
	}
	if id := cpuID(); id != "" {
		cpu += " (" + id + ")"
	}
	var mode string
	switch ftz {
	case len(rs):
		mode = "FTZ+DAZ on the benchmark thread (flush-to-zero, denormals-are-zero: the workers' mode)"
	case 0:
		mode = "not set by the benchmark (the IEEE default, subnormals kept; worker processes set FTZ+DAZ on their own threads)"
	default:
		var off []string
		for _, r := range rs {
			if n := r.Name + "/" + r.Variant; !r.FTZDAZ && !contains(off, n) {
				off = append(off, n)
			}
		}
		mode = fmt.Sprintf("FTZ+DAZ (the workers' mode) in every row but %s, which ran in the IEEE default (subnormals kept)", strings.Join(off, ", "))
	}
	return fmt.Sprintf("CPU: %s. FP mode: %s. Package: %s.", cpu, mode, strings.Join(pkgs, ", "))
}

// cpuID reads family, model and stepping from /proc/cpuinfo: the report runs
// right after the benchmarks, on the same machine.
func cpuID() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	var fam, model, step string
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case k == "cpu family" && fam == "":
			fam = v
		case k == "model" && model == "":
			model = v
		case k == "stepping" && step == "":
			step = v
		}
	}
	if fam == "" {
		return ""
	}
	return fmt.Sprintf("family %s, model %s, stepping %s", fam, model, step)
}

// baseline is the pure Go figure for the same kernel, extra and block size:
// the row named "go" (transports) or with variant "go" (kernels).
func baseline[K comparable](rows map[K]map[int]Record, k K, f int) float64 {
	for kk, byFrames := range rows {
		r, ok := byFrames[f]
		if !ok {
			continue
		}
		cur := rows[k][f]
		sameKernel := r.Name == cur.Name && r.Extra == cur.Extra && r.Variant == "go"
		transportGo := r.Name == "go" && r.Variant == cur.Variant && r.Extra == cur.Extra && cur.Group == "Transport"
		if (sameKernel || transportGo) && kk != k {
			return r.NsPerSample
		}
	}
	return 0
}

func main() {
	jsonPath := flag.String("json", "bench/results.json", "where to write the records")
	mdPath := flag.String("md", "bench/RESULTS.md", "where to write the Markdown tables")
	cmd := flag.String("cmd", "make bench", "the command that produced the input, quoted in the Markdown")
	note := flag.String("note", "", "a sentence on how the run was made, printed under the heading")
	plotDir := flag.String("plots", "", "also draw "+kernelsPlot+" and "+detectionPlot+" into this directory")
	plotFrames := flag.Int("plot-frames", 256, "block size the kernel speed picture compares at")
	from := flag.String("from", "", "redraw the pictures from this results.json instead of reading benchmarks (writes nothing else)")
	format := flag.String("plot-format", "svg", "svg or png")
	flag.Parse()
	if *format != "svg" && *format != "png" {
		fmt.Fprintf(os.Stderr, "report: -plot-format %q: use svg or png\n", *format)
		os.Exit(2)
	}
	kernelsPlot = strings.TrimSuffix(kernelsPlot, ".svg") + "." + *format
	detectionPlot = strings.TrimSuffix(detectionPlot, ".svg") + "." + *format
	if *from != "" {
		if err := redraw(*from, *plotDir, *plotFrames); err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(2)
		}
		return
	}
	recs, env := parse(os.Stdin)
	if len(recs) == 0 {
		fmt.Fprintln(os.Stderr, "report: no benchmark lines on stdin; pipe `go test -bench` output into it")
		os.Exit(1)
	}
	if *plotDir != "" {
		if err := drawAll(*plotDir, recs, *plotFrames, cpuOf(env)); err != nil {
			fmt.Fprintln(os.Stderr, "report: plots:", err)
			os.Exit(1)
		}
	}
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*jsonPath, append(b, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	f, err := os.Create(*mdPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	markdown(f, recs, env, *cmd, *note)
	detection(f, recs)
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	fmt.Printf("report: %d results → %s, %s\n", len(recs), *jsonPath, *mdPath)
	if *plotDir != "" {
		fmt.Printf("report: drew %s and %s in %s\n", kernelsPlot, detectionPlot, *plotDir)
	}
}

// redraw draws the pictures from a results.json written earlier.
func redraw(path, dir string, frames int) error {
	if dir == "" {
		return fmt.Errorf("-from needs -plots DIR")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var recs []Record
	if err := json.Unmarshal(b, &recs); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	if err := drawAll(dir, recs, frames, ""); err != nil {
		return err
	}
	fmt.Printf("report: drew %s and %s in %s from %s\n", kernelsPlot, detectionPlot, dir, path)
	return nil
}

// cpuOf is ", on <cpu>" from the benchmarks' environment lines, for titles.
func cpuOf(env []string) string {
	for _, e := range env {
		if c, ok := strings.CutPrefix(e, "cpu:"); ok {
			return ", " + strings.TrimSpace(c)
		}
	}
	return ""
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// detection writes the detection table the issue asks of `make bench`: kill
// to detection per path against the bare pidfd floor measured in the same
// run (KillToDetection/floor), the bare children at 1 MiB and 64 MiB
// (Detection) with the footprint ratio, and per fault kind (FaultDetection)
// the detection path and detection to first commit. Nothing when the run
// had no floor.
func detection(w io.Writer, recs []Record) {
	find := func(g, name, variant string) (Record, bool) {
		for _, r := range recs {
			if r.Group == g && r.Name == name && r.Variant == variant {
				return r, true
			}
		}
		return Record{}, false
	}
	floor, ok := find("KillToDetection", "floor", "")
	if !ok || floor.NsP50 == 0 || floor.NsP99 == 0 {
		return
	}
	us := func(ns float64) string { return fmt.Sprintf("%.0f", ns/1000) }
	fmt.Fprintf(w, "\n## Detection against the floor\n\nSIGKILL to the waiter's decision, in µs, against the bare pidfd floor measured in the same run "+
		"(an exec'd tiny static child at FIFO 60, a FIFO 80 thread in epoll_wait on its pidfd): p50 %s, p99 %s. "+
		"Target: p50 ≤ 0.5x and p99 ≤ 1x the floor's.\n\n", us(floor.NsP50), us(floor.NsP99))
	fmt.Fprint(w, "| what | path | footprint | kills | p50 | p99 | p50 / floor | p99 / floor |\n|---|---|---|---:|---:|---:|---:|---:|\n")
	row := func(what, path, fp string, r Record) {
		fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %s | %.2f | %.2f |\n", what, path, fp, r.Iterations,
			us(r.NsP50), us(r.NsP99), r.NsP50/floor.NsP50, r.NsP99/floor.NsP99)
	}
	for _, p := range []string{"death_word", "pidfd"} {
		if r, ok := find("KillToDetection", p, ""); ok && r.NsP50 > 0 {
			row("a lane's owner (supervisor, clock running)", p, "the worker's", r)
		}
	}
	var flat []string
	for _, p := range []struct{ name, what string }{
		{"death_word", "bare child, io_uring futex wait in epoll"},
		{"pidfd", "bare child, pidfd in epoll"},
		{"seed", "bare child, the seed's Python sentinel loop (2 ms timeout)"},
	} {
		small, ok1 := find("Detection", p.name, "1MiB")
		big, ok2 := find("Detection", p.name, "64MiB")
		if ok1 && small.NsP50 > 0 {
			row(p.what, p.name, "1 MiB", small)
		}
		if ok2 && big.NsP50 > 0 {
			row(p.what, p.name, "64 MiB", big)
		}
		if ok1 && ok2 && small.NsP50 > 0 && big.NsP50 > 0 {
			flat = append(flat, fmt.Sprintf("%s %.1fx", p.name, big.NsP50/small.NsP50))
		}
	}
	if len(flat) > 0 {
		fmt.Fprintf(w, "\n64 MiB p50 over 1 MiB p50 (target for the death word: within 2x): %s. "+
			"The bare children's rows start every kill from the same cold caches (64 MiB swept first).\n", strings.Join(flat, ", "))
	}
	var faults []Record
	for _, r := range recs {
		if r.Group == "FaultDetection" {
			faults = append(faults, r)
		}
	}
	if len(faults) == 0 {
		return
	}
	fmt.Fprint(w, "\nPer fault kind, in a lane's owner with the clock running (64 frames, 48 kHz): the fault to the monitor's decision, "+
		"the paths that decided, and the detection to the new owner's first commit (target: p99 ≤ 150 µs).\n\n"+
		"| fault | faults | detected by | p50 | p99 | p50 / floor | first commit p50 | first commit p99 |\n|---|---:|---|---:|---:|---:|---:|---:|\n")
	for _, r := range faults {
		var by []string
		for k, v := range r.Metrics {
			if p, ok := strings.CutPrefix(k, "%-by-"); ok && v > 0 {
				by = append(by, fmt.Sprintf("%s %.3g%%", p, v))
			}
		}
		sort.Strings(by)
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %.2f | %s | %s |\n", r.Name, r.Iterations, strings.Join(by, ", "),
			us(r.NsP50), us(r.NsP99), r.NsP50/floor.NsP50, us(r.Metrics["failover-ns-p50"]), us(r.Metrics["failover-ns-p99"]))
	}
}
