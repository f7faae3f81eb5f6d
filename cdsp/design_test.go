package cdsp_test

import (
	"fmt"
	"math"
	"testing"
)

const designRate = 48000

// toneDB is the steady-state gain of p at hz, in dB: one second to settle,
// then one second (a whole number of cycles of any integer hz) correlated
// against sine and cosine, which rejects the filter's transient leftovers and
// any harmonics.
func toneDB(t testing.TB, p proc, hz float64) float64 {
	t.Helper()
	const settle, measure = designRate, designRate
	buf := make([]float32, settle+measure)
	for n := range buf {
		buf[n] = float32(math.Sin(2 * math.Pi * hz * float64(n) / designRate))
	}
	run(p, buf, 1, 1024)
	var re, im float64
	for n := settle; n < len(buf); n++ {
		ph := 2 * math.Pi * hz * float64(n) / designRate
		re += float64(buf[n]) * math.Sin(ph)
		im += float64(buf[n]) * math.Cos(ph)
	}
	return 20 * math.Log10(2*math.Hypot(re, im)/measure)
}

// edgeDB is the settled gain for a constant (nyquist false) or for the
// alternating +1 -1 sequence at exactly rate/2 (nyquist true).
func edgeDB(t testing.TB, p proc, nyquist bool) float64 {
	t.Helper()
	buf := make([]float32, designRate)
	for n := range buf {
		buf[n] = 1
		if nyquist && n%2 == 1 {
			buf[n] = -1
		}
	}
	run(p, buf, 1, 1024)
	return 20 * math.Log10(math.Abs(float64(buf[len(buf)-1])))
}

type want struct {
	at      string // "dc", "nyquist" or a frequency in Hz
	db, tol float64
	below   bool // db is an upper bound
}

func checkDesign(t *testing.T, name string, params []float32, wants []want) {
	for _, im := range impls {
		t.Run(fmt.Sprintf("%s%v/%s", name, params, im.name), func(t *testing.T) {
			for _, w := range wants {
				p := im.make(t, name, params, 1, designRate)
				var got float64
				switch w.at {
				case "dc":
					got = edgeDB(t, p, false)
				case "nyquist":
					got = edgeDB(t, p, true)
				default:
					var hz float64
					fmt.Sscan(w.at, &hz)
					got = toneDB(t, p, hz)
				}
				if w.below {
					if !(got < w.db) {
						t.Errorf("at %s: %.2f dB, want below %.1f dB", w.at, got, w.db)
					}
				} else if math.Abs(got-w.db) > w.tol {
					t.Errorf("at %s: %.4f dB, want %.4f ± %.3f dB", w.at, got, w.db, w.tol)
				}
			}
		})
	}
}

// 20*log10(1/sqrt(2)): an RBJ low- or high-pass has gain q at f.
var minus3 = 20 * math.Log10(0.7071)

func TestLowpassResponse(t *testing.T) {
	checkDesign(t, "lowpass", []float32{1000, 0.7071, 1}, []want{
		{at: "dc", db: 0, tol: 0.001},
		{at: "100", db: 0, tol: 0.01},
		{at: "1000", db: minus3, tol: 0.01},
		{at: "20000", db: -50, below: true},
		{at: "23000", db: -70, below: true},
		{at: "nyquist", db: -120, below: true}, // a double zero at z = -1
	})
	// A cascade multiplies responses: twice (eight times) the dB everywhere.
	checkDesign(t, "lowpass", []float32{1000, 0.7071, 2}, []want{
		{at: "1000", db: 2 * minus3, tol: 0.02},
		{at: "dc", db: 0, tol: 0.001},
	})
	checkDesign(t, "lowpass", []float32{1000, 0.7071, 8}, []want{
		{at: "1000", db: 8 * minus3, tol: 0.05},
	})
	checkDesign(t, "lowpass", []float32{1000, 10, 1}, []want{ // resonant: gain q at f
		{at: "1000", db: 20, tol: 0.01},
	})
}

// TestCascadeMultipliesAttenuation: n identical sections give n times one
// section's dB at every frequency, measured on both sides of f.
func TestCascadeMultipliesAttenuation(t *testing.T) {
	for _, name := range []string{"lowpass", "highpass", "bandpass"} {
		for _, hz := range []float64{150, 1000, 4000, 10000} {
			one := toneDB(t, newC(t, name, []float32{1000, 0.7071, 1}, 1, designRate), hz)
			for _, n := range []float32{2, 8} {
				got := toneDB(t, newC(t, name, []float32{1000, 0.7071, n}, 1, designRate), hz)
				want := float64(n) * one
				// Below about -200 dB the measurement meets float32
				// rounding noise rather than the response.
				if want > -200 && math.Abs(got-want) > 0.01*float64(n) {
					t.Errorf("%s at %g Hz: one section %.3f dB, %v sections %.3f dB, want %.3f", name, hz, one, n, got, want)
				}
			}
		}
	}
}

func TestHighpassResponse(t *testing.T) {
	checkDesign(t, "highpass", []float32{1000, 0.7071, 1}, []want{
		{at: "nyquist", db: 0, tol: 0.001},
		{at: "15000", db: 0, tol: 0.01},
		{at: "1000", db: minus3, tol: 0.01},
		{at: "20", db: -60, below: true},
		{at: "dc", db: -120, below: true},
	})
	checkDesign(t, "highpass", []float32{1000, 0.7071, 2}, []want{
		{at: "1000", db: 2 * minus3, tol: 0.02},
		{at: "20", db: -120, below: true},
	})
}

func TestBandpassResponse(t *testing.T) {
	checkDesign(t, "bandpass", []float32{1000, 0.7071, 1}, []want{
		{at: "1000", db: 0, tol: 0.01}, // constant 0 dB peak gain
		{at: "100", db: -12, below: true},
		{at: "10000", db: -12, below: true},
		{at: "dc", db: -120, below: true},
		{at: "nyquist", db: -120, below: true},
	})
	checkDesign(t, "bandpass", []float32{3000, 20, 1}, []want{
		{at: "3000", db: 0, tol: 0.01}, // still 0 dB, whatever q
		{at: "2000", db: -20, below: true},
	})
}

func TestPeakingResponse(t *testing.T) {
	for _, db := range []float32{12, -12, 48, -48, 3} {
		checkDesign(t, "peaking", []float32{1000, 0.7071, db, 1}, []want{
			{at: "1000", db: float64(db), tol: 0.01},
			{at: "dc", db: 0, tol: 0.001},
			{at: "nyquist", db: 0, tol: 0.001},
		})
	}
	checkDesign(t, "peaking", []float32{2000, 4, 6, 2}, []want{
		{at: "2000", db: 12, tol: 0.02},
	})
	checkDesign(t, "peaking", []float32{2000, 4, 0, 1}, []want{
		{at: "2000", db: 0, tol: 0.001},
		{at: "300", db: 0, tol: 0.001},
	})
}

func TestShelfResponse(t *testing.T) {
	for _, db := range []float32{12, -12, 48, -48} {
		d := float64(db)
		checkDesign(t, "lowshelf", []float32{1000, 0.7071, db, 1}, []want{
			{at: "dc", db: d, tol: 0.001},
			{at: "20", db: d, tol: 0.02},
			{at: "1000", db: d / 2, tol: 0.01}, // the shelf's midpoint is at f
			{at: "20000", db: 0, tol: 0.02},
			{at: "nyquist", db: 0, tol: 0.001},
		})
		checkDesign(t, "highshelf", []float32{1000, 0.7071, db, 1}, []want{
			{at: "dc", db: 0, tol: 0.001},
			{at: "20", db: 0, tol: 0.02},
			{at: "1000", db: d / 2, tol: 0.01},
			{at: "20000", db: d, tol: 0.02},
			{at: "nyquist", db: d, tol: 0.001},
		})
	}
	checkDesign(t, "lowshelf", []float32{200, 0.7071, 6, 2}, []want{
		{at: "dc", db: 12, tol: 0.002},
		{at: "200", db: 6, tol: 0.02},
	})
}
