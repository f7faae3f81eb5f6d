package gotwin

import (
	"encoding/binary"
	"math"
)

// level is a us_gain_state used as the generators' level (us_level_* in
// cdsp/us_kstate.h): the gain kernel's ramp, one frame at a time.
type level struct {
	db, target, start, cur float32
	pos                    uint32
}

const levelBytes = gainStateBytes

func (l *level) init(db float32) {
	l.db = db
	l.target = dbToLinear(db)
	l.start, l.cur = l.target, l.target
	l.pos = gainRamp
}

func (l *level) set(db float32) {
	if db != l.db {
		l.db = db
		l.target = dbToLinear(db)
		l.start = l.cur
		if l.target == l.cur {
			l.pos = gainRamp
		} else {
			l.pos = 0
		}
	}
}

func (l *level) next() float32 {
	if l.pos < gainRamp {
		l.pos++
		if l.pos == gainRamp {
			l.cur = l.target
		} else {
			l.cur = l.start + float32((l.target-l.start)*(float32(l.pos)*(1.0/gainRamp)))
		}
	}
	return l.cur
}

func (l *level) put(b []byte) {
	le := binary.LittleEndian
	for i, f := range []float32{l.db, l.target, l.start, l.cur} {
		le.PutUint32(b[4*i:], math.Float32bits(f))
	}
	le.PutUint32(b[16:], l.pos)
}

func (l *level) get(b []byte) {
	f := func(i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }
	l.db, l.target, l.start, l.cur = f(0), f(1), f(2), f(3)
	l.pos = binary.LittleEndian.Uint32(b[16:])
}
