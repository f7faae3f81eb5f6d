// Command testsum reads `go test -json` on stdin and prints what a person
// needs from a whole-suite run: each package's result line, the full output
// of every failed test, every skipped test with its reason, and one closing
// line, "N passed, N failed, N skipped". It exits 1 if any test or package
// failed, so a pipeline into it keeps go test's verdict.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type key struct{ pkg, test string }

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

func run(in io.Reader, out io.Writer) int {
	outputs := map[key]*strings.Builder{}
	var passed, failed, skipped int
	var failures []key
	var skips []string
	pkgFailed := false
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// go test prints build failures as plain text.
			fmt.Fprintln(out, string(line))
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output":
			b := outputs[k]
			if b == nil {
				b = &strings.Builder{}
				outputs[k] = b
			}
			if b.Len() < 1<<20 { // a runaway test's log is cut, not kept whole
				b.WriteString(e.Output)
			}
		case "pass", "fail", "skip":
			if e.Test == "" { // the package's own result
				res := map[string]string{"pass": "ok  ", "fail": "FAIL", "skip": "?   "}[e.Action]
				fmt.Fprintf(out, "%s\t%s\t%.3fs\n", res, e.Package, e.Elapsed)
				if e.Action == "fail" {
					pkgFailed = true
					if b := outputs[k]; b != nil {
						fmt.Fprint(out, b.String())
					}
				}
				continue
			}
			switch e.Action {
			case "pass":
				passed++
			case "fail":
				failed++
				failures = append(failures, k)
			case "skip":
				skipped++
				skips = append(skips, fmt.Sprintf("%s %s: %s", e.Package, e.Test, skipReason(outputs[k])))
			}
			if e.Action != "fail" {
				delete(outputs, k)
			}
		}
	}
	for _, k := range failures {
		fmt.Fprintf(out, "--- FAIL: %s %s\n", k.pkg, k.test)
		if b := outputs[k]; b != nil {
			fmt.Fprint(out, b.String())
		}
	}
	if len(skips) > 0 {
		sort.Strings(skips)
		fmt.Fprintf(out, "skipped:\n")
		for _, s := range skips {
			fmt.Fprintf(out, "  %s\n", s)
		}
	}
	fmt.Fprintf(out, "%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 || pkgFailed {
		return 1
	}
	return 0
}

// skipReason is the last line a skipped test logged before its SKIP line.
func skipReason(b *strings.Builder) string {
	if b == nil {
		return "(no reason given)"
	}
	var last string
	for _, l := range strings.Split(b.String(), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "--- SKIP") || strings.HasPrefix(l, "=== ") {
			continue
		}
		last = l
	}
	if last == "" {
		return "(no reason given)"
	}
	return last
}
