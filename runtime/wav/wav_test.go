package wav

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// ---- building files by hand ----

var le = binary.LittleEndian

// riff wraps chunks in a RIFF/WAVE header with a correct RIFF size.
func riff(chunks ...[]byte) []byte {
	body := bytes.Join(chunks, nil)
	b := append([]byte("RIFF"), le.AppendUint32(nil, uint32(4+len(body)))...)
	return append(append(b, "WAVE"...), body...)
}

// ck is a chunk with its true size and the pad byte RIFF wants after an
// odd-sized body.
func ck(id string, body []byte) []byte {
	b := ckSize(id, uint32(len(body)), body)
	if len(body)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

// ckSize is a chunk whose declared size is whatever the test says.
func ckSize(id string, size uint32, body []byte) []byte {
	b := append([]byte(id), le.AppendUint32(nil, size)...)
	return append(b, body...)
}

func fmtBody(tag, channels, rate, blockAlign, bits int) []byte {
	b := le.AppendUint16(nil, uint16(tag))
	b = le.AppendUint16(b, uint16(channels))
	b = le.AppendUint32(b, uint32(rate))
	b = le.AppendUint32(b, uint32(rate*blockAlign))
	b = le.AppendUint16(b, uint16(blockAlign))
	return le.AppendUint16(b, uint16(bits))
}

func fmtChunk(tag, channels, rate, bits int) []byte {
	return ck("fmt ", fmtBody(tag, channels, rate, channels*bits/8, bits))
}

func extBody(sub, channels, rate, bits, valid int) []byte {
	b := fmtBody(tagExtensible, channels, rate, channels*bits/8, bits)
	b = le.AppendUint16(b, 22)
	b = le.AppendUint16(b, uint16(valid))
	b = le.AppendUint32(b, 0)
	b = le.AppendUint16(b, uint16(sub))
	return append(b, guidTail[:]...)
}

func pcm16(v ...int16) []byte {
	var b []byte
	for _, x := range v {
		b = le.AppendUint16(b, uint16(x))
	}
	return b
}

func pcm24(v ...int32) []byte {
	var b []byte
	for _, x := range v {
		b = append(b, byte(x), byte(x>>8), byte(x>>16))
	}
	return b
}

func pcm32(v ...int32) []byte {
	var b []byte
	for _, x := range v {
		b = le.AppendUint32(b, uint32(x))
	}
	return b
}

func f32(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = le.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func f64(v ...float64) []byte {
	var b []byte
	for _, x := range v {
		b = le.AppendUint64(b, math.Float64bits(x))
	}
	return b
}

// scaled is the reference conversion, written independently of the
// package: exact in float64, then one rounding to float32.
func scaled[T int16 | int32 | int](scale float64, v ...T) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / scale)
	}
	return out
}

type validCase struct {
	name     string
	file     []byte
	rate     int
	channels int
	want     []float32
}

func validCases() []validCase {
	i16 := []int16{-32768, 32767, 0, 16384, -1, 1}
	i24 := []int32{-8388608, 8388607, 1, -1, 4194304, 0}
	i32 := []int32{math.MinInt32, math.MaxInt32, 1 << 30, -1, 0, 12345678}
	fl32 := []float32{0.25, -1.5, math.MaxFloat32, float32(math.Copysign(0, -1)), 1e-45}
	fl64 := []float64{0.1, -0.75, 1e300, 1e-50, math.Copysign(0, -1), -2}
	want64 := make([]float32, len(fl64))
	for i, x := range fl64 {
		want64[i] = float32(x)
	}
	streamed := riff(fmtChunk(tagPCM, 2, 48000, 16), ckSize("data", streamedSize, pcm16(i16...)))
	le.PutUint32(streamed[4:], streamedSize) // streaming writers leave the RIFF size unset too

	return []validCase{
		{"pcm8", riff(fmtChunk(tagPCM, 1, 8000, 8), ck("data", []byte{0, 64, 128, 192, 255, 1})),
			8000, 1, []float32{-1, -0.5, 0, 0.5, 127.0 / 128, -127.0 / 128}},
		{"pcm16 stereo", riff(fmtChunk(tagPCM, 2, 44100, 16), ck("data", pcm16(i16...))),
			44100, 2, scaled(32768, i16...)},
		{"pcm24", riff(fmtChunk(tagPCM, 1, 96000, 24), ck("data", pcm24(i24...))),
			96000, 1, scaled(8388608, i24...)},
		{"pcm32", riff(fmtChunk(tagPCM, 3, 192000, 32), ck("data", pcm32(i32...))),
			192000, 3, scaled(2147483648, i32...)},
		{"float32", riff(fmtChunk(tagFloat, 1, 48000, 32), ck("data", f32(fl32...))),
			48000, 1, fl32},
		{"float64", riff(fmtChunk(tagFloat, 2, 48000, 64), ck("data", f64(fl64...))),
			48000, 2, want64},
		{"fmt with cbSize", riff(ck("fmt ", append(fmtBody(tagPCM, 2, 44100, 4, 16), 0, 0)), ck("data", pcm16(i16...))),
			44100, 2, scaled(32768, i16...)},
		{"extensible pcm24 in 3 channels, 20 valid bits", riff(ck("fmt ", extBody(tagPCM, 3, 48000, 24, 20)), ck("data", pcm24(i24...))),
			48000, 3, scaled(8388608, i24...)},
		{"extensible pcm16", riff(ck("fmt ", extBody(tagPCM, 2, 48000, 16, 16)), ck("data", pcm16(i16...))),
			48000, 2, scaled(32768, i16...)},
		{"extensible float32", riff(ck("fmt ", extBody(tagFloat, 5, 48000, 32, 32)), ck("data", f32(fl32...))),
			48000, 5, fl32},
		{"extensible float64", riff(ck("fmt ", extBody(tagFloat, 1, 48000, 64, 64)), ck("data", f64(fl64...))),
			48000, 1, want64},
		{"odd unknown chunks before data",
			riff(ck("LIST", []byte("abc")), fmtChunk(tagPCM, 2, 44100, 16), ck("bext", []byte("12345")),
				ck("fact", le.AppendUint32(nil, 3)), ck("data", pcm16(i16...)), ck("LIST", []byte("trailing"))),
			44100, 2, scaled(32768, i16...)},
		{"odd data chunk with pad and trailer",
			riff(fmtChunk(tagPCM, 1, 8000, 8), ck("data", []byte{0, 128, 255}), ck("LIST", []byte("x"))),
			8000, 1, []float32{-1, 0, 127.0 / 128}},
		{"streamed size 0xFFFFFFFF", streamed, 48000, 2, scaled(32768, i16...)},
		{"streamed size 0", riff(fmtChunk(tagPCM, 2, 48000, 16), ckSize("data", 0, pcm16(i16...))),
			48000, 2, scaled(32768, i16...)},
		{"empty data", riff(fmtChunk(tagFloat, 2, 48000, 32), ck("data", nil)), 48000, 2, []float32{}},
	}
}

type badCase struct {
	name string
	file []byte
	want string // must appear in Problem
}

func badCases() []badCase {
	pcm := fmtChunk(tagPCM, 2, 48000, 16)
	data := ck("data", pcm16(1, 2, 3, 4))
	unknownGUID := extBody(tagPCM, 2, 48000, 16, 16)
	copy(unknownGUID[24+2:], "not the standard")
	streamedCut := riff(pcm, ckSize("data", streamedSize, pcm16(1, 2, 3)[:5]))
	return []badCase{
		{"mp3", []byte("ID3\x03\x00\x00\x00\x00\x00\x00 mp3 frames"), `not a WAV file: the first bytes are "ID3\x03", expected "RIFF"`},
		{"empty", nil, "empty"},
		{"short", []byte("RIFF\x10\x00"), "only 6 bytes"},
		{"rifx", append([]byte("RIFX\x00\x00\x00\x10WAVE"), pcm...), "RIFX"},
		{"rf64", []byte("RF64\xff\xff\xff\xffWAVEds64"), "RF64"},
		{"avi", append([]byte("RIFF\x10\x00\x00\x00AVI "), pcm...), `type "AVI ", expected "WAVE"`},
		{"no fmt", riff(ck("LIST", []byte("info"))), "no fmt chunk"},
		{"data before fmt", riff(data, pcm), "no fmt chunk"},
		{"no data", riff(pcm, ck("LIST", []byte("info"))), "no data chunk"},
		{"truncated chunk before data", riff(pcm, ckSize("LIST", 100, []byte("info"))), "no data chunk"},
		{"mp3 in wav", riff(fmtChunk(0x0055, 2, 44100, 16), data), "format 0x0055 (MP3)"},
		{"adpcm", riff(fmtChunk(0x0002, 2, 44100, 4), data), "format 0x0002 (Microsoft ADPCM)"},
		{"extensible mp3", riff(ck("fmt ", extBody(0x0055, 2, 48000, 16, 16)), data), "EXTENSIBLE format 0x0055 (MP3)"},
		{"extensible unknown guid", riff(ck("fmt ", unknownGUID), data), "sub-format {"},
		{"pcm12", riff(fmtChunk(tagPCM, 1, 48000, 12), data), "unsupported bit depth: 12-bit PCM"},
		{"pcm64", riff(fmtChunk(tagPCM, 1, 48000, 64), data), "unsupported bit depth: 64-bit PCM"},
		{"float16", riff(fmtChunk(tagFloat, 2, 48000, 16), data), "unsupported bit depth: 16-bit float"},
		{"pcm0", riff(ck("fmt ", fmtBody(tagPCM, 1, 48000, 1, 0)), data), "unsupported bit depth: 0-bit PCM"},
		{"zero channels", riff(ck("fmt ", fmtBody(tagPCM, 0, 48000, 2, 16)), data), "zero channels"},
		{"65 channels", riff(fmtChunk(tagPCM, 65, 48000, 16), data), "too many channels: 65"},
		{"rate 0", riff(fmtChunk(tagPCM, 2, 0, 16), data), "sample rate of 0 Hz"},
		{"rate absurd", riff(fmtChunk(tagPCM, 2, 1000000, 16), data), "absurd sample rate 1000000 Hz"},
		{"block align", riff(ck("fmt ", fmtBody(tagPCM, 2, 48000, 2, 16)), data), "block align 2 is inconsistent with 2 channels of 16 bits (expected 4)"},
		{"data not whole frames", riff(pcm, ck("data", pcm16(1, 2, 3))), "data size 6 bytes is not a multiple of the block align 4"},
		{"truncated data", riff(pcm, ckSize("data", 400, pcm16(1, 2, 3, 4))), "truncated data: the data chunk declares 400 bytes but the file ends after 8"},
		{"truncated huge data", riff(pcm, ckSize("data", 0xFFFFFF00, pcm16(1, 2, 3, 4))), "truncated data"},
		{"streamed partial frame", streamedCut, "not a multiple of the block align"},
		{"fmt too short", riff(ck("fmt ", fmtBody(tagPCM, 2, 48000, 4, 16)[:14]), data), "fmt chunk too short: 14 bytes"},
		{"extensible too short", riff(ck("fmt ", extBody(tagPCM, 2, 48000, 16, 16)[:24]), data), "too short for WAVE_FORMAT_EXTENSIBLE"},
		{"truncated fmt", riff(ckSize("fmt ", 16, fmtBody(tagPCM, 2, 48000, 4, 16)[:10])), "truncated"},
		{"truncated chunk header", append(riff(pcm), "dat"...), "truncated"},
	}
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sameBits(t *testing.T, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d samples, want %d", len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("sample %d: %g (%#08x), want %g (%#08x)", i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// ---- decoding ----

func TestDecodeKnownValues(t *testing.T) {
	for _, c := range validCases() {
		t.Run(c.name, func(t *testing.T) {
			p := writeTemp(t, "in.wav", c.file)
			a, err := Read(p)
			if err != nil {
				t.Fatal(err)
			}
			if a.Rate != c.rate || a.Channels != c.channels {
				t.Fatalf("%d Hz %d channels, want %d Hz %d channels", a.Rate, a.Channels, c.rate, c.channels)
			}
			if a.Frames()*a.Channels != len(a.Samples) {
				t.Fatalf("Frames %d × %d channels != %d samples", a.Frames(), a.Channels, len(a.Samples))
			}
			sameBits(t, a.Samples, c.want)

			// The same through a plain reader, with no size to go by.
			b, err := Decode(bytes.NewReader(c.file), "in.wav")
			if err != nil {
				t.Fatal(err)
			}
			sameBits(t, b.Samples, c.want)
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, c := range badCases() {
		t.Run(c.name, func(t *testing.T) {
			p := writeTemp(t, "in.wav", c.file)
			a, err := Read(p)
			if err == nil {
				t.Fatalf("decoded %d Hz %d channels %d samples, want an error", a.Rate, a.Channels, len(a.Samples))
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%T %v, want a *FormatError", err, err)
			}
			if !strings.Contains(fe.Problem, c.want) {
				t.Errorf("problem %q, want it to contain %q", fe.Problem, c.want)
			}
			if fe.Path != p || fe.Fix == "" {
				t.Errorf("path %q fix %q: want the file named and a fix", fe.Path, fe.Fix)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, p+": ") || !strings.Contains(msg, " — "+fe.Fix) {
				t.Errorf("message %q does not lead with the path and end with the fix", msg)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := Decode(strings.NewReader("ID3\x03\x00\x00\x00\x00\x00\x00\x00\x00"), "in.wav")
	want := `in.wav: not a WAV file: the first bytes are "ID3\x03", expected "RIFF" — convert it to WAV (e.g. sox in.mp3 in.wav)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestUnsupportedListsSupported(t *testing.T) {
	_, err := Decode(bytes.NewReader(riff(fmtChunk(0x0055, 2, 44100, 16), ck("data", nil))), "x.wav")
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(fe.Fix, "PCM 8") || !strings.Contains(fe.Fix, "float 32, 64") {
		t.Fatalf("%v: want the supported formats listed", err)
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.wav")
	_, err := Read(missing)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), missing+": ") {
		t.Errorf("missing file: %v", err)
	}
	var fe *FormatError
	if errors.As(err, &fe) {
		t.Errorf("missing file reported as a format problem: %v", err)
	}
	if _, err := Read(dir); err == nil || !strings.HasPrefix(err.Error(), dir+": ") {
		t.Errorf("directory: %v", err)
	}
}

// ---- writing ----

// specials are the values a bit-exact comparison must not disturb.
func specials() []float32 {
	return []float32{
		0, float32(math.Copysign(0, -1)), 1, -1, 0.5, -0.999,
		math.Float32frombits(1),          // smallest subnormal
		math.Float32frombits(0x807fffff), // largest negative subnormal
		math.MaxFloat32, -math.SmallestNonzeroFloat32,
		float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fc01234), // quiet NaN with a payload
		math.Float32frombits(0xffc00001), // negative quiet NaN
		math.Float32frombits(0x7f800001), // signalling NaN
	}
}

func signal(channels, frames int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	s := make([]float32, channels*frames)
	n := copy(s, specials())
	for i := n; i < len(s); i++ {
		if i%2 == 0 {
			s[i] = float32(r.NormFloat64() * 0.3)
		} else {
			s[i] = math.Float32frombits(r.Uint32()) // any bits at all
		}
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	for _, channels := range []int{1, 2, 6} {
		t.Run(strings.Repeat("c", channels), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "out.wav")
			in := &Audio{Rate: 48000, Channels: channels, Samples: signal(channels, 1001, uint64(channels))}
			if err := WriteFile(p, in); err != nil {
				t.Fatal(err)
			}
			out, err := Read(p)
			if err != nil {
				t.Fatal(err)
			}
			if out.Rate != 48000 || out.Channels != channels || out.Frames() != 1001 {
				t.Fatalf("%d Hz %d channels %d frames", out.Rate, out.Channels, out.Frames())
			}
			sameBits(t, out.Samples, in.Samples)

			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			wantTag, fmtSize := uint16(tagFloat), 16
			if channels > 2 {
				wantTag, fmtSize = tagExtensible, 40
			}
			if tag := le.Uint16(b[20:]); tag != wantTag {
				t.Errorf("format tag %#04x, want %#04x", tag, wantTag)
			}
			fact := 20 + fmtSize
			if string(b[fact:fact+4]) != "fact" || le.Uint32(b[fact+8:]) != 1001 {
				t.Errorf("fact chunk %q frames %d, want 1001", b[fact:fact+4], le.Uint32(b[fact+8:]))
			}
			if riffSize := le.Uint32(b[4:]); int(riffSize) != len(b)-8 {
				t.Errorf("RIFF size %d, file %d bytes", riffSize, len(b))
			}
			if channels > 2 && [14]byte(b[46:60]) != guidTail || channels > 2 && le.Uint16(b[44:]) != tagFloat {
				t.Errorf("EXTENSIBLE sub-format is not IEEE float")
			}
		})
	}
}

func TestWriterManyWrites(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.wav")
	w, err := Create(p, 44100, 2)
	if err != nil {
		t.Fatal(err)
	}
	all := signal(2, 50000, 9)
	for rest, n := all, 1; len(rest) > 0; n = n*3 + 1 {
		k := min(2*n, len(rest))
		if err := w.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if err := w.Write(nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, a.Samples, all)
}

func TestWriterEmpty(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.wav")
	w, err := Create(p, 22050, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if a.Rate != 22050 || a.Channels != 3 || a.Frames() != 0 {
		t.Fatalf("%d Hz %d channels %d frames", a.Rate, a.Channels, a.Frames())
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return n
}

func TestWriterPublishesOnlyOnClose(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.wav")
	w, err := Create(p, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(signal(2, 40000, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("before Close: stat %v, want nothing at the path", err)
	}
	// The file being written has no name (O_TMPFILE): a run killed now
	// leaves nothing behind.
	if n := names(t, dir); len(n) != 0 {
		t.Fatalf("before Close the directory holds %q, want nothing", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := names(t, dir); len(n) != 1 || n[0] != "out.wav" {
		t.Fatalf("after Close the directory holds %q, want only out.wav", n)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	w.Abort() // after Close: must keep the finished file
	if _, err := Read(p); err != nil {
		t.Fatalf("after Abort following Close: %v", err)
	}
}

func TestWriterReplacesExisting(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.wav")
	os.WriteFile(p, []byte("old"), 0o644)
	w, err := Create(p, 48000, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]float32{0.5})
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("the old file changed before Close")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := Read(p)
	if err != nil || len(a.Samples) != 1 || a.Samples[0] != 0.5 {
		t.Fatalf("%v %v", a, err)
	}
}

func TestWriterAbort(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.wav")
	w, err := Create(p, 48000, 6)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(signal(6, 30000, 2)); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if n := names(t, dir); len(n) != 0 {
		t.Fatalf("after Abort the directory holds %q, want nothing", n)
	}
	w.Abort()
	if err := w.Write([]float32{1, 2, 3, 4, 5, 6}); err == nil {
		t.Error("Write after Abort succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after Abort succeeded")
	}
	if n := names(t, dir); len(n) != 0 {
		t.Fatalf("after Close following Abort the directory holds %q, want nothing", n)
	}
}

func TestWriterFailedWriteIsNotPublished(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.wav")
	w, err := Create(p, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]float32{1, 2})
	if err := w.Write([]float32{1, 2, 3}); err == nil || !strings.Contains(err.Error(), "not a whole number of 2-channel frames") {
		t.Fatalf("odd write: %v", err)
	}
	if err := w.Write([]float32{1, 2}); err == nil {
		t.Error("Write after a failed Write succeeded")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close published a file with a failed Write in it")
	}
	if n := names(t, dir); len(n) != 0 {
		t.Fatalf("the directory holds %q, want nothing", n)
	}
}

func TestWriterPermissions(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	p := filepath.Join(t.TempDir(), "out.wav")
	if err := WriteFile(p, &Audio{Rate: 48000, Channels: 1, Samples: []float32{0}}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want -rw-r--r-- like os.Create under umask 022", st.Mode().Perm())
	}
}

func TestCreateErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	cases := []struct {
		name, path   string
		rate, chans  int
		want, naming string
	}{
		{"missing dir", filepath.Join(dir, "nope", "out.wav"), 48000, 2, "does not exist", filepath.Join(dir, "nope")},
		{"path is a directory", dir, 48000, 2, "is a directory", dir},
		{"parent is a file", filepath.Join(file, "out.wav"), 48000, 2, "is a file, not a directory", file},
		{"ancestor is a file", filepath.Join(file, "a", "b", "out.wav"), 48000, 2, "is a file, not a directory", file},
		{"zero channels", filepath.Join(dir, "out.wav"), 48000, 0, "0 channels", "out.wav"},
		{"65 channels", filepath.Join(dir, "out.wav"), 48000, 65, "65 channels", "out.wav"},
		{"zero rate", filepath.Join(dir, "out.wav"), 0, 2, "0 Hz", "out.wav"},
		{"absurd rate", filepath.Join(dir, "out.wav"), 800000, 2, "800000 Hz", "out.wav"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := Create(c.path, c.rate, c.chans)
			if err == nil {
				w.Abort()
				t.Fatal("Create succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, c.naming) || !strings.Contains(msg, " — ") {
				t.Errorf("%q: want %q, naming %q, and what to do", msg, c.want, c.naming)
			}
		})
	}
	if n := names(t, dir); len(n) != 1 {
		t.Errorf("failed Creates left %q behind", n)
	}
}

func TestCreateReadOnlyDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	if os.Geteuid() == 0 {
		// Root writes through 0555, but no one creates files in sysfs's
		// root: the kernel refuses with EACCES, as for a read-only mode.
		dir = "/sys"
	}
	_, err := Create(filepath.Join(dir, "out.wav"), 48000, 2)
	if err == nil || !strings.Contains(err.Error(), "not writable") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("%v: want the directory named as not writable", err)
	}
}

// ---- fuzzing ----

func FuzzDecode(f *testing.F) {
	for _, c := range validCases() {
		f.Add(c.file)
	}
	for _, c := range badCases() {
		f.Add(c.file)
	}
	for _, ch := range []int{1, 2, 6} {
		p := filepath.Join(f.TempDir(), "seed.wav")
		if err := WriteFile(p, &Audio{Rate: 48000, Channels: ch, Samples: signal(ch, 3, 1)}); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		a, err := Decode(bytes.NewReader(b), "fuzz.wav")
		runtime.ReadMemStats(&ms)
		// A header may declare 4 GiB; what is allocated must follow the
		// bytes really there (at most 4 output bytes per input byte,
		// doubled by append's growth) plus fixed buffers.
		if alloc := ms.TotalAlloc - before; alloc > 1<<20+16*uint64(len(b)) {
			t.Fatalf("decoding %d bytes allocated %d", len(b), alloc)
		}
		if err != nil {
			// An in-memory reader cannot fail, so every error is about the
			// bytes, and must be a FormatError that explains itself.
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Path != "fuzz.wav" || fe.Problem == "" || fe.Fix == "" {
				t.Fatalf("%T %v: want a complete *FormatError", err, err)
			}
			return
		}
		if a.Channels < 1 || a.Channels > maxChannels || a.Rate < 1 || a.Rate > maxRate {
			t.Fatalf("accepted %d channels at %d Hz", a.Channels, a.Rate)
		}
		if len(a.Samples)%a.Channels != 0 || a.Frames()*a.Channels != len(a.Samples) {
			t.Fatalf("%d samples is not %d frames of %d channels", len(a.Samples), a.Frames(), a.Channels)
		}
		if len(a.Samples) > len(b) {
			t.Fatalf("%d samples out of %d bytes", len(a.Samples), len(b))
		}
	})
}
