package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
)

// The file is checked before bbolt maps it, by reading it (never through a
// mapping: a page past the end of the file would kill the process with
// SIGBUS). bbolt trusts the file: a read-write Open rebuilds the free-page
// list by walking every page in a goroutine of its own, where a damaged
// page panics beyond any recover, and a file shorter than its meta page
// says is mapped past its end. So everything bbolt will read is checked
// here first: both meta pages (magic, version, checksum, page size), the
// file size against the high-water mark, and every page reachable from the
// root (type, id, bounds, key order, no page reached twice) with the
// free-page list when the file has one. What passes can be walked by bbolt
// without reading outside its pages.
//
// The layout constants are bbolt's on-disk format (go.etcd.io/bbolt,
// internal/common), version 2, in the machine's byte order.
const (
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	pageHeaderSize  = 16 // id u64, flags u16, count u16, overflow u32
	elementSize     = 16 // branch: pos, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	bucketHeaderLen = 16 // root pgid u64, sequence u64
	metaLen         = 64 // magic, version, page size, flags u32; root, seq, freelist, pgid, txid, checksum u64

	branchPage   = 0x01
	leafPage     = 0x02
	metaPage     = 0x04
	freelistPage = 0x10
	bucketLeaf   = 0x01

	noFreelist = ^uint64(0)
	// minPageSize and maxPageSize bound what bbolt writes and finds (it
	// looks for the second meta page from 1 KiB to 16 MiB).
	minPageSize = 1 << 10
	maxPageSize = 1 << 24
)

var native = binary.NativeEndian

// fileMeta is what a meta page says.
type fileMeta struct {
	pageSize uint64
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages in use
	txid     uint64
}

// checkFile checks the bbolt file f (see above); the returned error is the
// problem in words, or a read error.
func checkFile(f *os.File) (*fileMeta, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size == 0 {
		return nil, damaged("it is empty (0 bytes)")
	}
	m0, err0 := readMeta(f, 0, 0, size)
	pageSize := uint64(0)
	if err0 == nil {
		pageSize = m0.pageSize
	}
	if pageSize != 0 && uint64(size) < 2*pageSize {
		return nil, damaged("it is %d bytes, shorter than its two meta pages of %d bytes: it was cut short", size, pageSize)
	}
	m1, err1 := findSecondMeta(f, pageSize, size)
	switch {
	case err0 != nil && err1 != nil:
		if size < 2*minPageSize {
			return nil, damaged("it is %d bytes, too short for a bbolt file's two meta pages: it was cut short", size)
		}
		return nil, damaged("neither meta page is valid (page 0: %v; page 1: %v): it was cut short, overwritten or is not a poller state file", err0, err1)
	case err0 != nil:
		return nil, damaged("meta page 0 is damaged (%v; page 1 is intact at transaction %d)", err0, m1.txid)
	case err1 != nil:
		return nil, damaged("meta page 1 is damaged (%v; page 0 is intact at transaction %d)", err1, m0.txid)
	case m0.pageSize != m1.pageSize:
		return nil, damaged("the meta pages disagree on the page size (%d, %d)", m0.pageSize, m1.pageSize)
	}
	for i, m := range []*fileMeta{m0, m1} {
		if err := m.bounds(size); err != nil {
			return nil, damaged("meta page %d (transaction %d): %v", i, m.txid, err)
		}
	}
	cur := m0
	if m1.txid > m0.txid {
		cur = m1
	}
	w := walker{f: f, meta: cur, reached: make([]uint64, (cur.pgid+63)/64)}
	if err := w.walk(); err != nil {
		return nil, err
	}
	return cur, nil
}

// problem is a damage found by checkFile, in words.
type problem string

func (p problem) Error() string { return string(p) }

func damaged(format string, a ...any) error { return problem(fmt.Sprintf(format, a...)) }

// readMeta reads and validates the meta page at page id (0 or 1) of the
// given size in bytes (0: the first page, size unknown yet).
func readMeta(f *os.File, id, pageSize uint64, fileSize int64) (*fileMeta, error) {
	buf := make([]byte, pageHeaderSize+metaLen)
	off := int64(id * pageSize)
	if off+int64(len(buf)) > fileSize {
		return nil, errors.New("beyond the end of the file")
	}
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil, err
	}
	p := buf[pageHeaderSize:]
	switch {
	case native.Uint32(p) != boltMagic:
		return nil, errors.New("no bbolt magic number")
	case native.Uint32(p[4:]) != boltVersion:
		return nil, fmt.Errorf("bbolt format version %d, want %d", native.Uint32(p[4:]), boltVersion)
	}
	h := fnv.New64a()
	h.Write(p[:56])
	if h.Sum64() != native.Uint64(p[56:]) {
		return nil, errors.New("checksum mismatch")
	}
	if got := native.Uint64(buf); got != id || native.Uint16(buf[8:])&metaPage == 0 {
		return nil, fmt.Errorf("page header names page %d with flags %#x", got, native.Uint16(buf[8:]))
	}
	m := &fileMeta{
		pageSize: uint64(native.Uint32(p[8:])),
		root:     native.Uint64(p[16:]),
		freelist: native.Uint64(p[32:]),
		pgid:     native.Uint64(p[40:]),
		txid:     native.Uint64(p[48:]),
	}
	if m.pageSize < minPageSize || m.pageSize > maxPageSize || m.pageSize&(m.pageSize-1) != 0 {
		return nil, fmt.Errorf("page size %d", m.pageSize)
	}
	if pageSize != 0 && m.pageSize != pageSize {
		return nil, fmt.Errorf("page size %d, page 0 says %d", m.pageSize, pageSize)
	}
	return m, nil
}

// findSecondMeta reads meta page 1: at pageSize when page 0 told it, else
// at each page size bbolt could have used.
func findSecondMeta(f *os.File, pageSize uint64, fileSize int64) (*fileMeta, error) {
	if pageSize != 0 {
		return readMeta(f, 1, pageSize, fileSize)
	}
	err := errors.New("not found at any page size")
	for ps := uint64(minPageSize); ps <= maxPageSize; ps <<= 1 {
		m, merr := readMeta(f, 1, ps, fileSize)
		if merr == nil && m.pageSize == ps {
			return m, nil
		}
	}
	return nil, err
}

// bounds checks the meta page's page numbers against each other and the
// file size: bbolt maps and reads every page below the high-water mark.
func (m *fileMeta) bounds(size int64) error {
	switch {
	case m.pgid < 4: // two meta pages, a free list and a root at least
		return fmt.Errorf("high-water mark %d", m.pgid)
	case m.pgid > uint64(size)/m.pageSize:
		return fmt.Errorf("it uses %d pages of %d bytes (%d bytes), the file has %d bytes: it was cut short",
			m.pgid, m.pageSize, m.pgid*m.pageSize, size)
	case m.root < 2 || m.root >= m.pgid:
		return fmt.Errorf("root page %d is outside pages 2 to %d", m.root, m.pgid-1)
	case m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.pgid):
		return fmt.Errorf("free-list page %d is outside pages 2 to %d", m.freelist, m.pgid-1)
	}
	return nil
}

// walker reads every page reachable from a meta page's root.
type walker struct {
	f       *os.File
	meta    *fileMeta
	reached []uint64 // bit per page id
	bufs    [][]byte // read's buffers, one per depth
}

func (w *walker) walk() error {
	if w.meta.freelist != noFreelist {
		if err := w.freelist(); err != nil {
			return err
		}
	}
	return w.page(w.meta.root, "the root bucket", nil, nil, 0)
}

// read returns page id with its overflow pages, marking them reached, in
// the buffer of depth (one per tree level: a parent's keys stay valid
// while its children are read).
func (w *walker) read(id uint64, in string, depth int) ([]byte, error) {
	if id < 2 || id >= w.meta.pgid {
		return nil, damaged("%s refers to page %d, outside pages 2 to %d", in, id, w.meta.pgid-1)
	}
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, make([]byte, w.meta.pageSize))
	}
	buf := w.bufs[depth][:w.meta.pageSize]
	if _, err := w.f.ReadAt(buf, int64(id*w.meta.pageSize)); err != nil {
		return nil, err
	}
	if got := native.Uint64(buf); got != id {
		return nil, damaged("page %d (in %s) has the header of page %d", id, in, got)
	}
	overflow := uint64(native.Uint32(buf[12:]))
	if overflow >= w.meta.pgid-id {
		return nil, damaged("page %d (in %s) runs %d pages past the high-water mark", id, in, overflow+1-(w.meta.pgid-id))
	}
	for p := id; p <= id+overflow; p++ {
		if w.reached[p/64]&(1<<(p%64)) != 0 {
			return nil, damaged("page %d (in %s) is reached twice", p, in)
		}
		w.reached[p/64] |= 1 << (p % 64)
	}
	if overflow > 0 {
		if n := (overflow + 1) * w.meta.pageSize; uint64(cap(w.bufs[depth])) < n {
			w.bufs[depth] = make([]byte, n)
		}
		buf = w.bufs[depth][:(overflow+1)*w.meta.pageSize]
		if _, err := w.f.ReadAt(buf, int64(id*w.meta.pageSize)); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// freelist checks the free-list page: its ids are pages below the mark.
func (w *walker) freelist() error {
	buf, err := w.read(w.meta.freelist, "the free list", 0)
	if err != nil {
		return err
	}
	if flags := native.Uint16(buf[8:]); flags&freelistPage == 0 {
		return damaged("free-list page %d has flags %#x", w.meta.freelist, flags)
	}
	start, n := uint64(pageHeaderSize), uint64(native.Uint16(buf[10:]))
	if n == 0xFFFF {
		if len(buf) < pageHeaderSize+8 {
			return damaged("free-list page %d is too short", w.meta.freelist)
		}
		n, start = native.Uint64(buf[pageHeaderSize:]), start+8
	}
	if n > (uint64(len(buf))-start)/8 {
		return damaged("free-list page %d lists %d pages, more than it holds", w.meta.freelist, n)
	}
	for i := range n {
		if id := native.Uint64(buf[start+8*i:]); id < 2 || id >= w.meta.pgid {
			return damaged("free-list page %d lists page %d, outside pages 2 to %d", w.meta.freelist, id, w.meta.pgid-1)
		}
	}
	return nil
}

// page checks the page id of a bucket's tree and what it refers to: every
// key within [lo, hi) (nil: open) and after the one before it.
func (w *walker) page(id uint64, in string, lo, hi []byte, depth int) error {
	buf, err := w.read(id, in, depth)
	if err != nil {
		return err
	}
	return w.elements(buf, id, in, lo, hi, depth)
}

// elements checks the branch or leaf page id in buf, or with id 0 a
// bucket's inline page (a leaf).
func (w *walker) elements(buf []byte, id uint64, in string, lo, hi []byte, depth int) error {
	what := "its inline page"
	if id != 0 {
		what = "page " + strconv.FormatUint(id, 10)
	}
	flags, count := native.Uint16(buf[8:]), int(native.Uint16(buf[10:]))
	isBranch := flags&branchPage != 0 && id != 0
	if !isBranch && flags&leafPage == 0 {
		return damaged("%s (in %s) is not a branch or leaf page (flags %#x)", what, in, flags)
	}
	if isBranch && count == 0 {
		return damaged("%s (in %s) is an empty branch page", what, in)
	}
	if pageHeaderSize+count*elementSize > len(buf) {
		return damaged("%s (in %s) has %d elements, more than it holds", what, in, count)
	}
	prev := lo
	for i := range count {
		at := pageHeaderSize + i*elementSize
		e := buf[at:]
		var pos, ksize, vsize uint64
		if isBranch {
			pos, ksize = uint64(native.Uint32(e)), uint64(native.Uint32(e[4:]))
		} else {
			pos, ksize, vsize = uint64(native.Uint32(e[4:])), uint64(native.Uint32(e[8:])), uint64(native.Uint32(e[12:]))
		}
		start := uint64(at) + pos
		if start+ksize+vsize > uint64(len(buf)) {
			return damaged("%s (in %s): element %d lies past the page's end", what, in, i)
		}
		key := buf[start : start+ksize]
		if i > 0 && bytes.Compare(key, prev) <= 0 || i == 0 && prev != nil && bytes.Compare(key, prev) < 0 || hi != nil && bytes.Compare(key, hi) >= 0 {
			return damaged("%s (in %s): key %d is out of order", what, in, i)
		}
		prev = key
		if isBranch {
			next := hi
			if i+1 < count {
				n := buf[pageHeaderSize+(i+1)*elementSize:]
				np, nk := uint64(native.Uint32(n)), uint64(native.Uint32(n[4:]))
				ns := uint64(pageHeaderSize+(i+1)*elementSize) + np
				if ns+nk > uint64(len(buf)) {
					return damaged("%s (in %s): element %d lies past the page's end", what, in, i+1)
				}
				next = buf[ns : ns+nk]
			}
			if err := w.page(native.Uint64(e[8:]), in, key, next, depth+1); err != nil {
				return err
			}
			continue
		}
		if native.Uint32(e)&bucketLeaf != 0 {
			if err := w.bucket(buf[start+ksize:start+ksize+vsize], in, key, depth); err != nil {
				return err
			}
		}
	}
	return nil
}

// bucket checks a bucket's value: its root page's tree, or its inline page.
func (w *walker) bucket(v []byte, in string, name []byte, depth int) error {
	sub := fmt.Sprintf("%s/%q", in, name)
	if in == "the root bucket" {
		sub = fmt.Sprintf("bucket %q", name)
	}
	if len(v) < bucketHeaderLen {
		return damaged("the header of %s is %d bytes", sub, len(v))
	}
	if root := native.Uint64(v); root != 0 {
		return w.page(root, sub, nil, nil, depth+1)
	}
	if len(v) < bucketHeaderLen+pageHeaderSize {
		return damaged("the inline page of %s is %d bytes", sub, len(v)-bucketHeaderLen)
	}
	return w.elements(v[bucketHeaderLen:], 0, sub, nil, nil, depth)
}
