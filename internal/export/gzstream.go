package export

import (
	"encoding/binary"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// statelessDict is how much of a part's previous lines the next deflate call may refer back to
// (the most klauspost's stateless encoder takes).
const statelessDict = 8 << 10

// statelessGzip writes one gzip member (RFC 1952) whose deflate stream is made by
// flate.StatelessDeflate: the compressor keeps no state between calls (a stateful
// klauspost gzip.Writer holds 0.5–1.4 MiB, measured by TestCompressorMemory), only the last
// statelessDict bytes of input as the next call's dictionary. That is what lets a whole-period
// listing keep all 31 day parts open at once in bounded memory.
type statelessGzip struct {
	w       io.Writer
	crc     uint32
	size    uint32 // input length mod 2^32, as the trailer wants
	dict    []byte
	started bool
}

func newStatelessGzip(w io.Writer) *statelessGzip {
	return &statelessGzip{w: w, dict: make([]byte, 0, statelessDict)}
}

// gzipHeader: magic, deflate, no flags, no mtime, no extra flags, OS unknown.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

// write compresses p; end finishes the member (p may be empty then).
func (z *statelessGzip) write(p []byte, end bool) error {
	if !z.started {
		if _, err := z.w.Write(gzipHeader); err != nil {
			return err
		}
		z.started = true
	}
	if len(p) > 0 || end {
		if err := flate.StatelessDeflate(z.w, p, end, z.dict); err != nil {
			return err
		}
	}
	z.crc = crc32.Update(z.crc, crc32.IEEETable, p)
	z.size += uint32(len(p))
	if n := len(p); n >= statelessDict {
		z.dict = append(z.dict[:0], p[n-statelessDict:]...)
	} else if n > 0 {
		keep := min(len(z.dict), statelessDict-n)
		z.dict = append(z.dict[:0], z.dict[len(z.dict)-keep:]...)
		z.dict = append(z.dict, p...)
	}
	if end {
		var t [8]byte
		binary.LittleEndian.PutUint32(t[:4], z.crc)
		binary.LittleEndian.PutUint32(t[4:], z.size)
		_, err := z.w.Write(t[:])
		return err
	}
	return nil
}

// NewCompressor returns the compressor a part's lines go through, writing gzip to w: level 0
// is the day split's stateless stream (lines compressed lineFlush bytes at a time), any other
// level a klauspost gzip.Writer at that level. For baselines that must compress as the
// exporter does (internal/bench).
func NewCompressor(w io.Writer, level int) (io.WriteCloser, error) {
	if level != 0 {
		return gzip.NewWriterLevel(w, level)
	}
	return &bufferedStateless{z: newStatelessGzip(w), buf: make([]byte, 0, lineFlush)}, nil
}

// bufferedStateless feeds a statelessGzip in chunks of lineFlush bytes, as a part does.
type bufferedStateless struct {
	z   *statelessGzip
	buf []byte
}

func (b *bufferedStateless) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), lineFlush-len(b.buf))
		b.buf, p = append(b.buf, p[:k]...), p[k:]
		if len(b.buf) == lineFlush {
			if err := b.z.write(b.buf, false); err != nil {
				return 0, err
			}
			b.buf = b.buf[:0]
		}
	}
	return n, nil
}

func (b *bufferedStateless) Close() error { return b.z.write(b.buf, true) }
