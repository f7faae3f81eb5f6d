package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

const sample = `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.1}
{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: needs a widget\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestB"}
{"Action":"run","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:3: got 2, want 3\n"}
{"Action":"fail","Package":"p","Test":"TestC"}
{"Action":"fail","Package":"p","Elapsed":1.5}
`

func TestSummary(t *testing.T) {
	var out bytes.Buffer
	rc := run(strings.NewReader(sample), &out)
	s := out.String()
	assert.Equal(t, 1, rc)
	assert.Contains(t, s, "FAIL\tp\t1.500s")
	assert.Contains(t, s, "got 2, want 3")
	assert.Contains(t, s, "p TestB: b_test.go:9: needs a widget")
	assert.True(t, strings.HasSuffix(s, "1 passed, 1 failed, 1 skipped\n"), s)
}

func TestSummaryAllPass(t *testing.T) {
	var out bytes.Buffer
	in := `{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"pass","Package":"p","Elapsed":0.2}
`
	assert.Equal(t, 0, run(strings.NewReader(in), &out))
	assert.True(t, strings.HasSuffix(out.String(), "1 passed, 0 failed, 0 skipped\n"), out.String())
}

func TestSummaryBuildFailure(t *testing.T) {
	var out bytes.Buffer
	in := "# p\n./x.go:1: syntax error\n" + `{"Action":"fail","Package":"p","Elapsed":0}` + "\n"
	assert.Equal(t, 1, run(strings.NewReader(in), &out))
	assert.Contains(t, out.String(), "syntax error")
}
