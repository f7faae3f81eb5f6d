package gotwin

// Operation-for-operation copies of cdsp/us_dspmath.h; see there for why the
// kernels carry their own exp and sincos. Every product that meets an add is
// wrapped in float64() so that no architecture may fuse it.

const (
	pi      = 0x1.921fb54442d18p+1
	halfPi  = 0x1.921fb54442d18p+0
	twoPi   = 0x1.921fb54442d18p+2
	invLn2  = 0x1.71547652b82fep+0
	ln2Hi   = 0x1.62e42feep-1
	ln2Lo   = 0x1.a39ef35793c76p-33
	ln10_20 = 0x1.d791c5f888822p-4
	ln10_40 = 0x1.d791c5f888822p-5
	ln10_80 = 0x1.d791c5f888822p-6
)

// detExp is us_exp: e^x for |x| < 700.
func detExp(x float64) float64 {
	t := float64(x * invLn2)
	var k int
	if t < 0 {
		k = int(t - 0.5)
	} else {
		k = int(t + 0.5)
	}
	r := (x - float64(float64(k)*ln2Hi)) - float64(float64(k)*ln2Lo)
	p := 1.0
	for n := 16; n >= 1; n-- {
		p = 1.0 + float64(p*r)/float64(n)
	}
	for ; k > 0; k-- {
		p = float64(p * 2.0)
	}
	for ; k < 0; k++ {
		p = float64(p * 0.5)
	}
	return p
}

// detSincos is us_sincos: sin and cos of x for 0 <= x <= pi.
func detSincos(x float64) (s, c float64) {
	sign := 1.0
	if x > halfPi {
		x = pi - x
		sign = -1.0
	}
	x2 := float64(x * x)
	ps, pc := 1.0, 1.0
	for n := 14; n >= 1; n-- {
		ps = 1.0 - float64(ps*x2)/float64((2*n)*(2*n+1))
		pc = 1.0 - float64(pc*x2)/float64((2*n-1)*(2*n))
	}
	return float64(x * ps), float64(sign * pc)
}

// Taylor coefficients of sin, as in us_dspmath.h.
const (
	sinC3  = -0x1.5555555555555p-3
	sinC5  = 0x1.1111111111111p-7
	sinC7  = -0x1.a01a01a01a01ap-13
	sinC9  = 0x1.71de3a556c734p-19
	sinC11 = -0x1.ae64567f544e4p-26
	sinC13 = 0x1.6124613a86d09p-33
	sinC15 = -0x1.ae7f3e733b81fp-41
)

// sinTurns is us_sin_turns: sin(2 pi p) for 0 <= p < 1.
func sinTurns(p float64) float64 {
	t := p - 0.5
	if t > 0.25 {
		t = 0.5 - t
	} else if t < -0.25 {
		t = -0.5 - t
	}
	x := float64(twoPi * t)
	x2 := float64(x * x)
	q := float64(sinC15)
	q = float64(q*x2) + sinC13
	q = float64(q*x2) + sinC11
	q = float64(q*x2) + sinC9
	q = float64(q*x2) + sinC7
	q = float64(q*x2) + sinC5
	q = float64(q*x2) + sinC3
	return -(x + float64(float64(x*x2)*q))
}
