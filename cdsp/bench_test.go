package cdsp_test

import (
	"fmt"
	"testing"

	"github.com/understudy-rt/understudy/cdsp/gotwin"
)

// A worker's typical block: 256 frames of stereo.
func BenchmarkProcess(b *testing.B) {
	for _, c := range []struct {
		name   string
		params []float32
	}{
		{"gain", []float32{-6}},
		{"lowpass", []float32{1000, 0.7071, 1}},
		{"lowpass", []float32{1000, 0.7071, 8}},
		{"peaking", []float32{1000, 2, 6, 1}},
	} {
		in := noise(256, 2, 1)
		b.Run(fmt.Sprintf("C/%s%v", c.name, c.params), func(b *testing.B) {
			inst := newC(b, c.name, c.params, 2, 48000)
			buf := clone(in)
			b.SetBytes(int64(4 * len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				inst.Process(buf)
			}
		})
		b.Run(fmt.Sprintf("Go/%s%v", c.name, c.params), func(b *testing.B) {
			p, err := gotwin.New(c.name, c.params, 2, 48000)
			if err != nil {
				b.Fatal(err)
			}
			buf := clone(in)
			b.SetBytes(int64(4 * len(buf)))
			for b.Loop() {
				p.Process(buf)
			}
		})
	}
}
