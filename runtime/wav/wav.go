// Package wav reads and writes RIFF/WAVE files: every common PCM and float
// format in, 32-bit float out. Output appears at its path only when complete
// (temporary file, fsync, rename), so a failed run leaves no partial file.
package wav

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// Audio is a whole signal, interleaved, full scale ±1.
type Audio struct {
	Rate     int
	Channels int
	Samples  []float32
}

// Frames is the length in sample frames.
func (a *Audio) Frames() int {
	if a.Channels == 0 {
		return 0
	}
	return len(a.Samples) / a.Channels
}

// FormatError is a file that is not a WAV this package can read.
type FormatError struct {
	Path    string
	Problem string
	Fix     string
}

func (e *FormatError) Error() string {
	if e.Fix == "" {
		return fmt.Sprintf("%s: %s", e.Path, e.Problem)
	}
	return fmt.Sprintf("%s: %s; %s", e.Path, e.Problem, e.Fix)
}

const (
	tagPCM        = 0x0001
	tagFloat      = 0x0003
	tagExtensible = 0xFFFE
	maxChannels   = 64
	maxRate       = 768000
)

const supported = "supported: PCM 8/16/24/32-bit and IEEE float 32/64-bit, plain or WAVE_FORMAT_EXTENSIBLE"

// Read loads a whole WAV file.
func Read(path string) (*Audio, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Decode(bufio.NewReader(f), path)
}

// Decode reads a whole WAV stream; name is used in errors.
func Decode(r io.Reader, name string) (*Audio, error) {
	bad := func(problem, fix string) error { return &FormatError{Path: name, Problem: problem, Fix: fix} }
	var hdr [12]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, bad(fmt.Sprintf("not a WAV file: only %d bytes", n), "give a RIFF/WAVE file")
	}
	if string(hdr[0:4]) != "RIFF" {
		return nil, bad(fmt.Sprintf("not a WAV file: the first bytes are %q, expected \"RIFF\"", hdr[0:4]),
			"convert it to WAV (e.g. sox in.mp3 in.wav)")
	}
	if string(hdr[8:12]) != "WAVE" {
		return nil, bad(fmt.Sprintf("a RIFF file of type %q, not \"WAVE\"", hdr[8:12]), "give a WAV file")
	}
	var (
		haveFmt            bool
		tag, channels, bps int
		rate, blockAlign   int
	)
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if !haveFmt {
				return nil, bad("no fmt chunk", "the file is truncated or not a WAV file")
			}
			return nil, bad("no data chunk", "the file holds no audio or is truncated")
		}
		id := string(ch[0:4])
		size := binary.LittleEndian.Uint32(ch[4:8])
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, bad(fmt.Sprintf("fmt chunk of %d bytes, at least 16 expected", size), "the file is damaged")
			}
			b := make([]byte, size+size%2)
			if _, err := io.ReadFull(r, b); err != nil {
				return nil, bad("truncated fmt chunk", "the file is damaged")
			}
			tag = int(binary.LittleEndian.Uint16(b[0:2]))
			channels = int(binary.LittleEndian.Uint16(b[2:4]))
			rate = int(binary.LittleEndian.Uint32(b[4:8]))
			blockAlign = int(binary.LittleEndian.Uint16(b[12:14]))
			bps = int(binary.LittleEndian.Uint16(b[14:16]))
			if tag == tagExtensible {
				if size < 40 {
					return nil, bad("WAVE_FORMAT_EXTENSIBLE with a short fmt chunk", "the file is damaged")
				}
				tag = int(binary.LittleEndian.Uint16(b[24:26])) // the sub-format GUID starts with the tag
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, bad("data chunk before the fmt chunk", "the file is damaged")
			}
			if err := checkFormat(tag, channels, rate, bps, blockAlign); err != "" {
				return nil, bad(err, supported)
			}
			var data []byte
			var err error
			if size == 0 || size == 0xFFFFFFFF { // streamed: the length was never filled in
				data, err = io.ReadAll(r)
			} else {
				data = make([]byte, size)
				var n int
				n, err = io.ReadFull(r, data)
				if err != nil {
					return nil, bad(fmt.Sprintf("truncated: the data chunk declares %d bytes, the file holds %d", size, n), "the file is damaged or still being written")
				}
			}
			if err != nil {
				return nil, err
			}
			if len(data)%blockAlign != 0 {
				if size == 0 || size == 0xFFFFFFFF {
					data = data[:len(data)-len(data)%blockAlign]
				} else {
					return nil, bad(fmt.Sprintf("data of %d bytes is not a whole number of %d-byte frames", len(data), blockAlign), "the file is damaged")
				}
			}
			return &Audio{Rate: rate, Channels: channels, Samples: convert(data, tag, bps)}, nil
		default:
			if _, err := io.CopyN(io.Discard, r, int64(size)+int64(size%2)); err != nil {
				return nil, bad(fmt.Sprintf("truncated %q chunk", id), "the file is damaged")
			}
		}
	}
}

func checkFormat(tag, channels, rate, bps, blockAlign int) string {
	switch {
	case tag != tagPCM && tag != tagFloat:
		name := map[int]string{0x0002: " (ADPCM)", 0x0006: " (A-law)", 0x0007: " (mu-law)", 0x0055: " (MP3)", 0x0011: " (IMA ADPCM)"}[tag]
		return fmt.Sprintf("format 0x%04X%s is not supported", tag, name)
	case tag == tagPCM && bps != 8 && bps != 16 && bps != 24 && bps != 32:
		return fmt.Sprintf("%d-bit PCM is not supported", bps)
	case tag == tagFloat && bps != 32 && bps != 64:
		return fmt.Sprintf("%d-bit float is not supported", bps)
	case channels < 1 || channels > maxChannels:
		return fmt.Sprintf("%d channels (1..%d allowed)", channels, maxChannels)
	case rate < 1 || rate > maxRate:
		return fmt.Sprintf("sample rate %d Hz (1..%d allowed)", rate, maxRate)
	case blockAlign != channels*bps/8:
		return fmt.Sprintf("block align %d does not match %d channels of %d bits", blockAlign, channels, bps)
	}
	return ""
}

func convert(data []byte, tag, bps int) []float32 {
	n := len(data) / (bps / 8)
	out := make([]float32, n)
	le := binary.LittleEndian
	for i := range out {
		switch {
		case tag == tagFloat && bps == 32:
			out[i] = math.Float32frombits(le.Uint32(data[i*4:]))
		case tag == tagFloat && bps == 64:
			out[i] = float32(math.Float64frombits(le.Uint64(data[i*8:])))
		case bps == 8:
			out[i] = float32(int(data[i])-128) / 128
		case bps == 16:
			out[i] = float32(int16(le.Uint16(data[i*2:]))) / 32768
		case bps == 24:
			v := int32(uint32(data[i*3])<<8|uint32(data[i*3+1])<<16|uint32(data[i*3+2])<<24) >> 8
			out[i] = float32(v) / 8388608
		case bps == 32:
			out[i] = float32(float64(int32(le.Uint32(data[i*4:]))) / 2147483648)
		}
	}
	return out
}

// Writer writes a 32-bit float WAV into a temporary file beside path; Close
// makes it appear at path, Abort removes it.
type Writer struct {
	path     string
	f        *os.File
	w        *bufio.Writer
	rate     int
	channels int
	samples  int64
	err      error
}

// Create starts a float WAV at path. It fails at once, with the reason, when
// the directory cannot take the file.
func Create(path string, rate, channels int) (*Writer, error) {
	if channels < 1 || channels > maxChannels || rate < 1 || rate > maxRate {
		return nil, fmt.Errorf("%s: cannot write %d channels at %d Hz", path, channels, rate)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory; give a file name", path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the directory for %s: %v", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %v", path, err)
	}
	w := &Writer{path: path, f: f, w: bufio.NewWriterSize(f, 1<<16), rate: rate, channels: channels}
	w.w.Write(w.header(0)) // sizes patched by Close
	return w, nil
}

func (w *Writer) header(dataBytes uint32) []byte {
	ext := w.channels > 2
	fmtSize := uint32(16)
	if ext {
		fmtSize = 40
	}
	b := make([]byte, 0, 80)
	le := binary.LittleEndian
	b = append(b, "RIFF"...)
	b = le.AppendUint32(b, 4+(8+fmtSize)+(8+4)+(8+dataBytes))
	b = append(b, "WAVEfmt "...)
	b = le.AppendUint32(b, fmtSize)
	tag := uint16(tagFloat)
	if ext {
		tag = tagExtensible
	}
	b = le.AppendUint16(b, tag)
	b = le.AppendUint16(b, uint16(w.channels))
	b = le.AppendUint32(b, uint32(w.rate))
	b = le.AppendUint32(b, uint32(w.rate*w.channels*4))
	b = le.AppendUint16(b, uint16(w.channels*4))
	b = le.AppendUint16(b, 32)
	if ext {
		b = le.AppendUint16(b, 22)
		b = le.AppendUint16(b, 32)
		b = le.AppendUint32(b, 0) // no speaker positions claimed
		// KSDATAFORMAT_SUBTYPE_IEEE_FLOAT: the tag, then the fixed GUID tail.
		b = le.AppendUint16(b, tagFloat)
		b = append(b, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71)
	}
	b = append(b, "fact"...)
	b = le.AppendUint32(b, 4)
	b = le.AppendUint32(b, dataBytes/uint32(4*w.channels))
	b = append(b, "data"...)
	b = le.AppendUint32(b, dataBytes)
	return b
}

// Write appends interleaved samples, a multiple of the channel count.
func (w *Writer) Write(interleaved []float32) error {
	if w.err != nil {
		return w.err
	}
	if len(interleaved)%w.channels != 0 {
		return fmt.Errorf("%s: %d samples is not a whole number of %d-channel frames", w.path, len(interleaved), w.channels)
	}
	var buf [4]byte
	for _, s := range interleaved {
		binary.LittleEndian.PutUint32(buf[:], math.Float32bits(s))
		if _, err := w.w.Write(buf[:]); err != nil {
			w.err = err
			return err
		}
	}
	w.samples += int64(len(interleaved))
	return nil
}

// ErrTooLong is a WAV past the format's 4 GiB limit.
var ErrTooLong = errors.New("wav: more than 4 GiB of audio")

// Close completes the file and moves it to its path.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.err
	if err == nil {
		err = w.w.Flush()
	}
	if err == nil && w.samples*4 > math.MaxUint32-100 {
		err = ErrTooLong
	}
	if err == nil {
		_, err = w.f.WriteAt(w.header(uint32(w.samples*4)), 0)
	}
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.path)
	}
	if err != nil {
		os.Remove(w.f.Name())
	}
	w.f = nil
	return err
}

// Abort discards the file.
func (w *Writer) Abort() {
	if w.f != nil {
		w.f.Close()
		os.Remove(w.f.Name())
		w.f = nil
	}
}

// WriteFile writes a whole signal.
func WriteFile(path string, a *Audio) error {
	w, err := Create(path, a.Rate, a.Channels)
	if err != nil {
		return err
	}
	if err := w.Write(a.Samples); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}
