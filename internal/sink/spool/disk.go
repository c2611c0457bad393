package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The disk spool is a directory of segment files, oldest first, named by a
// 16-digit hex id: <id>.seg. Records are appended to the newest segment (the
// head) and read from the oldest; a segment is deleted once every record in
// it was delivered. Each record is framed as
//
//	uint32 little-endian payload length | uint32 CRC-32C of the payload | payload
//
// so a record torn by a crash, or a corrupt one, is detected and skipped
// rather than delivered. On a clean close the reader's position in the
// oldest segment is kept in the file "cursor", so a restart resumes exactly
// where delivery stopped; after a crash delivery restarts at the beginning
// of the oldest segment (records may then be delivered twice: receivers
// deduplicate by the record's id where they can).

const (
	headerSize = 8
	segSuffix  = ".seg"
	cursorName = "cursor"
	// firstID leaves room below for segments that Close prepends.
	firstID = uint64(1) << 40
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type segment struct {
	id      uint64
	size    int64 // bytes, including those still buffered for the head
	records int   // records not yet delivered
	start   int64 // where delivery resumes in this segment (a saved cursor)
}

type disk struct {
	dir      string
	maxBytes int64
	segBytes int64

	segs    []*segment // oldest first; the last one is the head when w != nil
	bytes   int64
	records int

	w       *os.File // head segment, open for append
	bw      *bufio.Writer
	flushed int64 // bytes of the head that reached the file

	r    *os.File // oldest segment, open for reading
	rID  uint64
	rOff int64 // read position in segs[0]
	rBuf []byte

	corrupt int    // records skipped as corrupt, not yet counted off
	nextID  uint64 // of the next head segment
}

func segPath(dir string, id uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%016x%s", id, segSuffix))
}

// openDisk opens or creates the spool directory and takes stock of what an
// earlier run left there.
func openDisk(dir string, maxBytes, segBytes int64) (*disk, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	d := &disk{dir: dir, maxBytes: maxBytes, segBytes: segBytes}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, ent := range ents {
		name := ent.Name()
		if !strings.HasSuffix(name, segSuffix) || !ent.Type().IsRegular() {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 16, 64)
		if err != nil {
			continue
		}
		s, err := scanSegment(segPath(dir, id))
		if err != nil {
			return nil, err
		}
		s.id = id
		d.segs = append(d.segs, s)
	}
	slices.SortFunc(d.segs, func(a, b *segment) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	d.nextID = firstID
	for _, s := range d.segs {
		d.bytes += s.size
		d.records += s.records
		d.nextID = max(d.nextID, s.id+1)
	}
	if err := d.readCursor(); err != nil {
		return nil, err
	}
	return d, nil
}

// scanSegment counts the whole records in a segment; a torn tail is cut off.
func scanSegment(path string) (*segment, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &segment{}
	br := bufio.NewReaderSize(f, 64<<10)
	var hdr [headerSize]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			break
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:4]))
		if s.size+headerSize+n > st.Size() {
			break
		}
		if _, err := br.Discard(int(n)); err != nil {
			break
		}
		s.size += headerSize + n
		s.records++
	}
	if s.size < st.Size() {
		// A crash in the middle of a write: drop the partial record.
		if err := os.Truncate(path, s.size); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	return s, nil
}

// readCursor applies the position a clean close saved, then removes it: from
// now on the position lives in memory until the next clean close.
func (d *disk) readCursor() error {
	p := filepath.Join(d.dir, cursorName)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer os.Remove(p)
	var id uint64
	var off int64
	if _, err := fmt.Sscanf(string(b), "%x %d", &id, &off); err != nil {
		return nil // an unreadable cursor only costs duplicates
	}
	for _, s := range d.segs {
		if s.id != id || off <= 0 || off > s.size {
			continue
		}
		n, err := countRecords(segPath(d.dir, id), off)
		if err != nil {
			return err
		}
		s.start = off
		s.records -= n
		d.records -= n
		d.bytes -= off
	}
	if len(d.segs) > 0 {
		d.rOff = d.segs[0].start
	}
	return nil
}

// countRecords counts the records that end at or before off.
func countRecords(path string, off int64) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var hdr [headerSize]byte
	var pos int64
	n := 0
	for pos < off {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			break
		}
		l := int64(binary.LittleEndian.Uint32(hdr[:4]))
		if _, err := br.Discard(int(l)); err != nil {
			break
		}
		pos += headerSize + l
		if pos <= off {
			n++
		}
	}
	return n, nil
}

func (d *disk) empty() bool { return d.records == 0 }

// append adds a record at the head. It reports false when the spool is full.
func (d *disk) append(rec []byte) (bool, error) {
	n := int64(headerSize + len(rec))
	if d.bytes+n > d.maxBytes {
		return false, nil
	}
	if d.w == nil || d.segs[len(d.segs)-1].size >= d.segBytes {
		if err := d.newHead(); err != nil {
			return false, err
		}
	}
	var hdr [headerSize]byte
	binary.LittleEndian.PutUint32(hdr[:4], uint32(len(rec)))
	binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(rec, crcTable))
	if _, err := d.bw.Write(hdr[:]); err != nil {
		return false, fmt.Errorf("spool: %w", err)
	}
	if _, err := d.bw.Write(rec); err != nil {
		return false, fmt.Errorf("spool: %w", err)
	}
	h := d.segs[len(d.segs)-1]
	h.size += n
	h.records++
	d.bytes += n
	d.records++
	return true, nil
}

func (d *disk) newHead() error {
	if err := d.closeHead(); err != nil {
		return err
	}
	id := d.nextID
	d.nextID++
	f, err := os.OpenFile(segPath(d.dir, id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	d.w, d.bw, d.flushed = f, bufio.NewWriterSize(f, 64<<10), 0
	d.segs = append(d.segs, &segment{id: id})
	return nil
}

func (d *disk) flush() error {
	if d.bw == nil || d.bw.Buffered() == 0 {
		return nil
	}
	err := d.bw.Flush()
	d.flushed = d.segs[len(d.segs)-1].size - int64(d.bw.Buffered())
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

func (d *disk) closeHead() error {
	if d.w == nil {
		return nil
	}
	err := d.flush()
	if cerr := d.w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("spool: %w", cerr)
	}
	d.w, d.bw = nil, nil
	return err
}

// peek reads up to maxRecs records (and about maxBytes) from the read
// position without consuming them. It returns the records and the position
// after them, to pass to advance once they are delivered.
func (d *disk) peek(maxRecs, maxBytes int) ([][]byte, int64, error) {
	if len(d.segs) == 0 {
		return nil, 0, nil
	}
	s := d.segs[0]
	limit := s.size
	if d.w != nil && len(d.segs) == 1 {
		if err := d.flush(); err != nil {
			return nil, 0, err
		}
		limit = d.flushed
	}
	if d.rOff >= limit {
		return nil, d.rOff, nil
	}
	if d.r == nil || d.rID != s.id {
		if d.r != nil {
			d.r.Close()
		}
		f, err := os.Open(segPath(d.dir, s.id))
		if err != nil {
			return nil, 0, fmt.Errorf("spool: %w", err)
		}
		d.r, d.rID = f, s.id
	}
	want := min(limit-d.rOff, int64(maxBytes)+headerSize)
	buf, err := d.readAt(d.rOff, want)
	if err != nil {
		return nil, 0, err
	}
	var recs [][]byte
	off := d.rOff
	for len(recs) < maxRecs && len(buf) >= headerSize {
		n := int64(binary.LittleEndian.Uint32(buf[:4]))
		sum := binary.LittleEndian.Uint32(buf[4:8])
		if off+headerSize+n > limit {
			// The length is past the end: the rest of the segment is unusable.
			d.corrupt++
			return recs, limit, nil
		}
		if int64(len(buf)) < headerSize+n {
			if len(recs) > 0 {
				break
			}
			// A single record larger than the read: read it whole.
			if buf, err = d.readAt(off, headerSize+n); err != nil {
				return nil, 0, err
			}
		}
		p := buf[headerSize : headerSize+n]
		off += headerSize + n
		buf = buf[headerSize+n:]
		if crc32.Checksum(p, crcTable) != sum {
			d.corrupt++
			continue
		}
		recs = append(recs, slices.Clone(p))
	}
	return recs, off, nil
}

func (d *disk) readAt(off, n int64) ([]byte, error) {
	if int64(cap(d.rBuf)) < n {
		d.rBuf = make([]byte, n)
	}
	buf := d.rBuf[:n]
	if _, err := d.r.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("spool: read segment %016x: %w", d.rID, err)
	}
	return buf, nil
}

// advance consumes the oldest segment up to off (as peek returned it),
// counting recs records, and deletes segments that are used up. It returns
// how many records were skipped as corrupt.
func (d *disk) advance(off int64, recs int) (corrupt int, err error) {
	if len(d.segs) == 0 {
		return 0, nil
	}
	s := d.segs[0]
	d.bytes -= off - d.rOff
	d.rOff = off
	// Corrupt records were skipped: they are gone from the count too.
	corrupt = d.corrupt
	recs += d.corrupt
	d.corrupt = 0
	recs = min(recs, s.records)
	s.records -= recs
	d.records -= recs
	if d.rOff < s.size {
		return corrupt, nil
	}
	// The segment is used up.
	if d.r != nil {
		d.r.Close()
		d.r = nil
	}
	if d.w != nil && len(d.segs) == 1 {
		if err := d.closeHead(); err != nil {
			return corrupt, err
		}
	}
	corrupt += s.records // records lost to corruption at the end
	d.records -= s.records
	s.records = 0
	d.segs = d.segs[1:]
	d.rOff = 0
	if len(d.segs) > 0 {
		d.rOff = d.segs[0].start
	}
	if err := os.Remove(segPath(d.dir, s.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return corrupt, fmt.Errorf("spool: %w", err)
	}
	return corrupt, nil
}

// prepend writes recs into a new segment before every other, so they are
// delivered first after a restart. It ignores the size bound: these records
// were already accepted.
func (d *disk) prepend(recs [][]byte) error {
	if len(recs) == 0 {
		return nil
	}
	id := firstID
	if len(d.segs) > 0 {
		id = d.segs[0].id - 1
	}
	f, err := os.OpenFile(segPath(d.dir, id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	bw := bufio.NewWriter(f)
	s := &segment{id: id}
	var hdr [headerSize]byte
	for _, rec := range recs {
		binary.LittleEndian.PutUint32(hdr[:4], uint32(len(rec)))
		binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(rec, crcTable))
		bw.Write(hdr[:])
		bw.Write(rec)
		s.size += int64(headerSize + len(rec))
		s.records++
	}
	err = bw.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	d.bytes += s.size
	d.records += s.records
	d.segs = append([]*segment{s}, d.segs...)
	return nil
}

// close flushes the head and saves the read position of the oldest segment
// that is partly delivered, for the next run.
func (d *disk) close(cursorSeg uint64, cursorOff int64) error {
	err := d.closeHead()
	if d.r != nil {
		d.r.Close()
		d.r = nil
	}
	if cursorOff > 0 {
		c := fmt.Sprintf("%x %d\n", cursorSeg, cursorOff)
		if werr := os.WriteFile(filepath.Join(d.dir, cursorName), []byte(c), 0o600); err == nil && werr != nil {
			err = fmt.Errorf("spool: %w", werr)
		}
	}
	return err
}
