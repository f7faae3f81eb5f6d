// Package wav reads and writes RIFF/WAVE files: every common PCM and float
// format in, 32-bit float out.
//
// Output is bit-exact (the float32 bits given to Write are the bits Read
// returns), because the supervisor compares rendered audio against a
// reference bit for bit. Output appears at its path only when complete
// (an unnamed O_TMPFILE file, fsync, link, rename), so a failed, killed or
// crashed run never leaves a partial file that a later comparison could
// mistake for a result, nor a hidden temporary file to clean up.
package wav

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"syscall"
)

// Audio is a whole signal: interleaved samples, full scale ±1.
type Audio struct {
	Rate     int
	Channels int
	Samples  []float32 // len = Frames()*Channels
}

// Frames is the length in sample frames.
func (a *Audio) Frames() int {
	if a.Channels <= 0 {
		return 0
	}
	return len(a.Samples) / a.Channels
}

// FormatError is a file that is not a WAV this package can read: what is
// wrong with it, and what the user can do about it.
type FormatError struct {
	Path    string
	Problem string
	Fix     string
}

func (e *FormatError) Error() string {
	s := e.Problem
	if e.Path != "" {
		s = e.Path + ": " + s
	}
	if e.Fix != "" {
		s += " — " + e.Fix
	}
	return s
}

const (
	tagPCM        = 0x0001
	tagFloat      = 0x0003
	tagExtensible = 0xFFFE

	maxChannels = 64
	maxRate     = 768000

	// streamedSize marks a data chunk whose writer never went back to fill
	// in its length (a pipe, or a recorder that was killed).
	streamedSize = 0xFFFFFFFF
)

// guidTail is what follows the 16-bit format tag in the sub-format GUID of
// every WAVE_FORMAT_EXTENSIBLE file that wraps a classic format tag
// ({tag}-0000-0010-8000-00AA00389B71).
var guidTail = [14]byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

const (
	supportedList = "supported: PCM 8 (unsigned), 16, 24, 32-bit and IEEE float 32, 64-bit, plain or WAVE_FORMAT_EXTENSIBLE"
	convertHint   = "convert it, e.g. sox in.wav -e floating-point -b 32 out.wav"
	damagedHint   = "the header is damaged; re-export the file from its source"
)

// tagNames are the formats users actually bring, so the error can say what
// the file is rather than only a number.
var tagNames = map[int]string{
	0x0000: "unknown",
	0x0001: "PCM",
	0x0002: "Microsoft ADPCM",
	0x0003: "IEEE float",
	0x0006: "A-law",
	0x0007: "µ-law",
	0x0011: "IMA ADPCM",
	0x0031: "GSM 6.10",
	0x0050: "MPEG",
	0x0055: "MP3",
	0x00FF: "AAC",
	0x1610: "HE-AAC",
	0x2000: "AC-3",
	0x2001: "DTS",
	0xF1AC: "FLAC",
}

func tagName(tag int) string {
	if n, ok := tagNames[tag]; ok {
		return fmt.Sprintf("format 0x%04X (%s)", tag, n)
	}
	return fmt.Sprintf("format 0x%04X", tag)
}

// Read loads a whole WAV file; see Open for what path may name.
func Read(path string) (*Audio, error) {
	r, err := Open(path, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	hint := int64(-1)
	if f, ok := r.closer.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			hint = st.Size()
		}
	}
	return r.readAll(hint)
}

// Decode reads a whole WAV stream; name is used in errors.
func Decode(r io.Reader, name string) (*Audio, error) {
	hint := int64(-1)
	if l, ok := r.(interface{ Len() int }); ok { // bytes.Reader, strings.Reader, bytes.Buffer
		hint = int64(l.Len())
	}
	return decode(r, name, hint)
}

// format is what the fmt chunk says, reduced to what decoding needs.
type format struct {
	float      bool
	bits       int // container width
	channels   int
	rate       int
	blockAlign int
}

type decoder struct {
	r    io.Reader
	name string
	pos  int64 // bytes consumed, for messages about truncation
}

func (d *decoder) fail(problem, fix string) error {
	return &FormatError{Path: d.name, Problem: problem, Fix: fix}
}

// readFull reads len(b) bytes. eof reports that the stream ended first,
// which the caller turns into a format problem; any other failure comes
// back as err, already naming the file.
func (d *decoder) readFull(b []byte) (n int, eof bool, err error) {
	n, err = io.ReadFull(d.r, b)
	d.pos += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return n, true, nil
	}
	if err != nil {
		return n, false, d.ioErr(err)
	}
	return n, false, nil
}

func (d *decoder) skip(n int64) (skipped int64, eof bool, err error) {
	skipped, err = io.CopyN(io.Discard, d.r, n)
	d.pos += skipped
	if err == io.EOF {
		return skipped, true, nil
	}
	if err != nil {
		return skipped, false, d.ioErr(err)
	}
	return skipped, false, nil
}

func (d *decoder) ioErr(err error) error {
	var se *StallError
	if errors.As(err, &se) {
		return fmt.Errorf("%s: %w — check the program writing it, or raise --read-timeout if it is only slow", d.name, err)
	}
	return fmt.Errorf("%s: cannot read: %w — check that the file is readable and the disk is healthy", d.name, unwrapPath(err))
}

// decode is Decode with a bound on the file size (or -1), so that a header
// declaring gigabytes of audio cannot make us allocate gigabytes up front.
func decode(r io.Reader, name string, sizeHint int64) (*Audio, error) {
	rd, err := NewReader(r, name)
	if err != nil {
		return nil, err
	}
	return rd.readAll(sizeHint)
}

// NewReader reads a WAV header from r, up to the start of its samples, and
// returns a Reader that streams them; name is used in errors. Nothing is
// read past what the caller asks for, so a pipe or a huge file costs only
// the caller's buffer.
func NewReader(r io.Reader, name string) (*Reader, error) {
	d := &decoder{r: r, name: name}
	var hdr [12]byte
	n, eof, err := d.readFull(hdr[:])
	if err != nil {
		return nil, err
	}
	if eof {
		if n == 0 {
			return nil, d.fail("not a WAV file: the file is empty", "check that it was written completely")
		}
		if string(hdr[:min(n, 4)]) != "RIFF"[:min(n, 4)] {
			return nil, d.fail(fmt.Sprintf("not a WAV file: the first bytes are %q, expected \"RIFF\"", hdr[:min(n, 4)]),
				"convert it to WAV (e.g. sox in.mp3 in.wav)")
		}
		return nil, d.fail(fmt.Sprintf("not a WAV file: only %d bytes long, a WAV header needs 12", n),
			"the file is truncated; re-copy or re-export it")
	}
	switch string(hdr[0:4]) {
	case "RIFF":
	case "RIFX":
		return nil, d.fail("big-endian WAV (RIFX) is not supported", "convert it to little-endian WAV (e.g. sox in.wav -L out.wav)")
	case "RF64", "BW64":
		return nil, d.fail(fmt.Sprintf("64-bit WAV (%s) is not supported", hdr[0:4]),
			"convert it to a plain WAV (e.g. sox in.wav out.wav), splitting it first if it holds more than 4 GiB")
	default:
		return nil, d.fail(fmt.Sprintf("not a WAV file: the first bytes are %q, expected \"RIFF\"", hdr[0:4]),
			"convert it to WAV (e.g. sox in.mp3 in.wav)")
	}
	if string(hdr[8:12]) != "WAVE" {
		return nil, d.fail(fmt.Sprintf("not a WAV file: a RIFF file of type %q, expected \"WAVE\"", hdr[8:12]),
			"extract or convert its audio to WAV (e.g. ffmpeg -i in.avi out.wav)")
	}
	// The RIFF size is not checked: streaming writers leave it 0 or
	// 0xFFFFFFFF and many others get it wrong, while the chunk sizes are
	// what decoding actually relies on.

	var f *format
	for {
		var ch [8]byte
		n, eof, err := d.readFull(ch[:])
		if err != nil {
			return nil, err
		}
		if eof {
			if n != 0 {
				return nil, d.fail(fmt.Sprintf("truncated: the file ends inside a chunk header after %d bytes", d.pos),
					"the file is incomplete; re-copy or re-export it")
			}
			if f == nil {
				return nil, d.fail("no fmt chunk: the file never describes its format", "the file is damaged or not a WAV; re-export it")
			}
			return nil, d.fail("no data chunk: the file holds no audio", "the file may be truncated or hold only metadata; re-export it")
		}
		id := string(ch[0:4])
		size := binary.LittleEndian.Uint32(ch[4:8])
		switch {
		case id == "fmt " && f == nil:
			if f, err = d.fmtChunk(size); err != nil {
				return nil, err
			}
		case id == "data":
			if f == nil {
				return nil, d.fail("no fmt chunk before the data chunk", "the file is damaged or not a WAV; re-export it")
			}
			return d.dataReader(f, size)
		default:
			// RIFF pads odd-sized chunks to an even length; the pad byte is
			// not counted in the size, and missing it would misalign every
			// chunk after this one.
			want := int64(size) + int64(size&1)
			got, eof, err := d.skip(want)
			if err != nil {
				return nil, err
			}
			// A missing final pad byte is harmless, but a short chunk means
			// the data chunk, if any, is gone.
			if eof && got < int64(size) {
				return nil, d.fail(fmt.Sprintf("truncated: the %q chunk declares %d bytes but the file ends after %d of them, so there is no data chunk", id, size, got),
					"the file is incomplete; re-copy or re-export it")
			}
		}
	}
}

// fmtChunk reads and validates the fmt chunk, so an unsupported or damaged
// format is reported even when the file has no data chunk.
func (d *decoder) fmtChunk(size uint32) (*format, error) {
	if size < 16 {
		return nil, d.fail(fmt.Sprintf("fmt chunk too short: %d bytes, at least 16 needed", size), damagedHint)
	}
	// Only the first 40 bytes mean anything to us; reading no more keeps a
	// lying size from costing memory.
	b := make([]byte, min(size, 40))
	if _, eof, err := d.readFull(b); err != nil {
		return nil, err
	} else if eof {
		return nil, d.fail(fmt.Sprintf("truncated: the file ends inside the fmt chunk (%d bytes declared)", size), "the file is incomplete; re-copy or re-export it")
	}
	if rest := int64(size) + int64(size&1) - int64(len(b)); rest > 0 {
		if got, eof, err := d.skip(rest); err != nil {
			return nil, err
		} else if eof && got < rest-int64(size&1) {
			return nil, d.fail(fmt.Sprintf("truncated: the file ends inside the fmt chunk (%d bytes declared)", size), "the file is incomplete; re-copy or re-export it")
		}
	}
	le := binary.LittleEndian
	tag := int(le.Uint16(b[0:2]))
	f := &format{
		channels:   int(le.Uint16(b[2:4])),
		rate:       int(le.Uint32(b[4:8])),
		blockAlign: int(le.Uint16(b[12:14])),
		bits:       int(le.Uint16(b[14:16])),
	}
	kind := ""
	if tag == tagExtensible {
		if size < 40 {
			return nil, d.fail(fmt.Sprintf("fmt chunk too short for WAVE_FORMAT_EXTENSIBLE: %d bytes, 40 needed", size), damagedHint)
		}
		guid := b[24:40]
		if [14]byte(guid[2:16]) != guidTail {
			return nil, d.fail(fmt.Sprintf("unsupported WAVE_FORMAT_EXTENSIBLE sub-format %s", guidString(guid)),
				supportedList+"; "+convertHint)
		}
		// The valid-bits field is not needed: samples are left-justified in
		// their container, so scaling by the container width is already
		// right for, say, 20 valid bits in 24.
		tag = int(le.Uint16(guid[0:2]))
		kind = "WAVE_FORMAT_EXTENSIBLE "
	}
	switch tag {
	case tagPCM:
	case tagFloat:
		f.float = true
	default:
		return nil, d.fail(fmt.Sprintf("unsupported %s%s", kind, tagName(tag)), supportedList+"; "+convertHint)
	}
	switch {
	case f.channels == 0:
		return nil, d.fail("zero channels", damagedHint)
	case f.channels > maxChannels:
		return nil, d.fail(fmt.Sprintf("too many channels: %d (at most %d)", f.channels, maxChannels),
			"split it into files of fewer channels (e.g. sox in.wav out.wav remix 1-8)")
	case f.rate == 0:
		return nil, d.fail("sample rate of 0 Hz", damagedHint)
	case f.rate > maxRate:
		return nil, d.fail(fmt.Sprintf("absurd sample rate %d Hz (at most %d)", f.rate, maxRate), damagedHint)
	case !f.float && f.bits != 8 && f.bits != 16 && f.bits != 24 && f.bits != 32,
		f.float && f.bits != 32 && f.bits != 64:
		what := "PCM"
		if f.float {
			what = "float"
		}
		return nil, d.fail(fmt.Sprintf("unsupported bit depth: %d-bit %s", f.bits, what), supportedList+"; "+convertHint)
	case f.blockAlign != f.channels*f.bits/8:
		return nil, d.fail(fmt.Sprintf("block align %d is inconsistent with %d channels of %d bits (expected %d)",
			f.blockAlign, f.channels, f.bits, f.channels*f.bits/8), damagedHint)
	}
	return f, nil
}

func guidString(g []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("{%08X-%04X-%04X-%X-%X}", le.Uint32(g[0:4]), le.Uint16(g[4:6]), le.Uint16(g[6:8]), g[8:10], g[10:16])
}

// Reader streams the samples of one WAV's data chunk.
type Reader struct {
	Rate     int
	Channels int

	d        *decoder
	f        *format
	want     int64 // data bytes declared; math.MaxInt64 when streamed
	got      int64
	streamed bool
	buf      []byte
	err      error // sticky: the stream's end (io.EOF) or its failure
	closeMu  sync.Mutex
	closer   io.Closer
}

func (d *decoder) dataReader(f *format, size uint32) (*Reader, error) {
	streamed := size == 0 || size == streamedSize
	ba := int64(f.blockAlign)
	if !streamed && int64(size)%ba != 0 {
		return nil, d.fail(fmt.Sprintf("data size %d bytes is not a multiple of the block align %d (%d channels of %d bits)", size, ba, f.channels, f.bits),
			"the file is damaged; re-export it")
	}
	want := int64(size)
	if streamed {
		want = math.MaxInt64
	}
	return &Reader{Rate: f.rate, Channels: f.channels, d: d, f: f, want: want, streamed: streamed}, nil
}

// Frames is the length the header declares, or -1 for a streamed WAV
// (written to a pipe, its length known only at its end).
func (r *Reader) Frames() int64 {
	if r.streamed {
		return -1
	}
	return r.want / int64(r.f.blockAlign)
}

// ReadFrames fills dst with whole frames of interleaved samples and returns
// how many samples it wrote. At the end of the audio it returns 0, io.EOF; a
// truncated or cut stream is an error that says so. It reads at most 64 KiB
// per call whatever len(dst) is.
func (r *Reader) ReadFrames(dst []float32) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	ba := int64(r.f.blockAlign)
	frames := min(int64(len(dst)/r.Channels), (1<<16)/ba)
	if frames == 0 {
		return 0, nil
	}
	if r.got >= r.want {
		r.err = io.EOF
		return 0, r.err
	}
	if r.buf == nil {
		r.buf = make([]byte, (1<<16)/ba*ba)
	}
	n, eof, err := r.d.readFull(r.buf[:min(frames*ba, r.want-r.got)])
	if err != nil {
		r.err = err
		return 0, err
	}
	r.got += int64(n)
	if eof {
		switch {
		case !r.streamed && r.got < r.want:
			r.err = r.d.fail(fmt.Sprintf("truncated data: the data chunk declares %d bytes but the file ends after %d", r.want, r.got),
				"the file is incomplete (still being written, or the copy was cut short); re-copy or re-export it")
			return 0, r.err
		case r.got%ba != 0:
			r.err = r.d.fail(fmt.Sprintf("streamed data of %d bytes is not a multiple of the block align %d (%d channels of %d bits); the last frame is cut", r.got, ba, r.f.channels, r.f.bits),
				"the writer was interrupted; re-export the file, or trim it to whole frames")
			return 0, r.err
		}
		r.err = io.EOF
		if n == 0 {
			return 0, io.EOF
		}
	}
	// Every read is a whole number of frames unless the stream ended, and
	// that case was refused above.
	return len(r.f.convert(dst[:0], r.buf[:n])), nil
}

// Close closes the file the Reader was opened on (by Open), if any. It may
// be called from another goroutine while ReadFrames waits on a pipe, which
// then returns at once with an error.
func (r *Reader) Close() error {
	r.closeMu.Lock()
	c := r.closer
	r.closer = nil
	r.closeMu.Unlock()
	if c == nil {
		return nil
	}
	return c.Close()
}

// readAll converts what is left, in blocks, so the raw bytes (twice the
// output for float64) are never all held at once.
func (r *Reader) readAll(sizeHint int64) (*Audio, error) {
	// Preallocate for the declared size only as far as the input can back
	// it; with no idea of the input's size, start small and let append
	// grow with what really arrives, so a lying header costs nothing.
	bound := min(r.want-r.got, 1<<16)
	if sizeHint >= 0 {
		bound = min(r.want-r.got, max(sizeHint-r.d.pos, 0))
	}
	out := make([]float32, 0, bound/int64(r.f.bits/8))
	chunk := make([]float32, (1<<16)/int64(r.f.blockAlign)*int64(r.Channels))
	for {
		n, err := r.ReadFrames(chunk)
		out = append(out, chunk[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return &Audio{Rate: r.Rate, Channels: r.Channels, Samples: out}, nil
}

// convert appends the samples in src, a whole number of frames.
func (f *format) convert(dst []float32, src []byte) []float32 {
	le := binary.LittleEndian
	switch {
	case f.float && f.bits == 32:
		for i := 0; i+4 <= len(src); i += 4 {
			dst = append(dst, math.Float32frombits(le.Uint32(src[i:])))
		}
	case f.float && f.bits == 64:
		for i := 0; i+8 <= len(src); i += 8 {
			dst = append(dst, float32(math.Float64frombits(le.Uint64(src[i:]))))
		}
	case f.bits == 8:
		for _, b := range src {
			dst = append(dst, float32(int(b)-128)/128)
		}
	case f.bits == 16:
		for i := 0; i+2 <= len(src); i += 2 {
			dst = append(dst, float32(int16(le.Uint16(src[i:])))/32768)
		}
	case f.bits == 24:
		for i := 0; i+3 <= len(src); i += 3 {
			// Assemble in the top of an int32 and shift back, to get the
			// sign extension for free.
			v := int32(uint32(src[i])<<8|uint32(src[i+1])<<16|uint32(src[i+2])<<24) >> 8
			dst = append(dst, float32(v)/8388608)
		}
	case f.bits == 32:
		for i := 0; i+4 <= len(src); i += 4 {
			// float64 holds every int32 exactly and the division by 2^31 is
			// exact, so this rounds once, to the nearest float32.
			dst = append(dst, float32(float64(int32(le.Uint32(src[i:])))/2147483648))
		}
	}
	return dst
}

// unwrapPath drops the *os.PathError layer from an error, whose text would
// repeat the path our message already leads with, keeping what errors.Is
// looks at (the errno).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// isNotDir is ENOTDIR: some component of the path is a regular file.
func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR)
}
