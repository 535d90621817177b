// Package ext4 reads one regular file from the root directory of an
// ext2/ext3/ext4 filesystem image, read-only and without mounting it. The
// simulated guest uses it to check a VM's disk the way the real test guest
// does (mount the disk, cat MARKER).
//
// Images come from users, so the reader assumes hostile input: every
// on-disk number is checked before it is used as an offset or a size,
// memory is bounded by the caller's limit or one block, and every loop and
// recursion is bounded. Checksums and the journal are ignored: a read-only
// look at files mkfs wrote needs neither.
package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

var (
	// ErrNotExt4 means r holds no ext2/3/4 superblock, uses an
	// incompatible feature this reader does not handle, or is corrupt.
	ErrNotExt4 = errors.New("not a supported ext2/3/4 filesystem")
	// ErrNotFound means the root directory has no such entry, or it is
	// not a regular file.
	ErrNotFound = errors.New("no such regular file in the root directory")
)

const (
	superOffset = 1024
	superSize   = 1024
	superMagic  = 0xEF53
	rootIno     = 2

	defaultLimit = 1 << 20
	// A root directory beyond this is not something a test disk has; the
	// cap keeps the scan of a corrupt size short when the image size is
	// unknown (block devices).
	maxDirBytes = 256 << 20
	// The kernel's own limit on extent tree depth.
	maxExtentDepth = 5
	// Extent index and indirect blocks read per file: far above what a
	// 256 MiB directory needs, far below what a looping tree could ask.
	maxTreeBlocks = 1 << 16
)

// Superblock feature bits (see the kernel's fs/ext4/ext4.h).
const (
	compatSparseSuper2 = 0x200

	roCompatSparseSuper = 0x1

	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatRecover     = 0x4
	incompatJournalDev  = 0x8
	incompatMetaBG      = 0x10
	incompatExtents     = 0x40
	incompat64Bit       = 0x80
	incompatMMP         = 0x100
	incompatFlexBG      = 0x200
	incompatEAInode     = 0x400
	incompatDirData     = 0x1000
	incompatCsumSeed    = 0x2000
	incompatLargeDir    = 0x4000
	incompatInlineData  = 0x8000
	incompatEncrypt     = 0x10000
	incompatCasefold    = 0x20000
)

// Features this reader copes with. RECOVER (journal not replayed) is
// accepted: files mkfs wrote never live only in the journal. CASEFOLD only
// changes how names compare, and lookups here are exact.
const incompatHandled = incompatFiletype | incompatRecover | incompatMetaBG |
	incompatExtents | incompat64Bit | incompatMMP | incompatFlexBG |
	incompatEAInode | incompatCsumSeed | incompatLargeDir |
	incompatInlineData | incompatCasefold

var incompatNames = []struct {
	bit  uint32
	name string
}{
	{incompatCompression, "compression"},
	{incompatJournalDev, "journal_dev"},
	{incompatDirData, "dirdata"},
	{incompatEncrypt, "encrypt"},
}

// Inode fields and flags.
const (
	modeTypeMask = 0xF000
	modeDir      = 0x4000
	modeRegular  = 0x8000

	flagEncrypt    = 0x800
	flagExtents    = 0x80000
	flagInlineData = 0x10000000

	iBlockOffset = 0x28
	iBlockSize   = 60
	goodOldInode = 128

	extentMagic = 0xF30A
	extentEntry = 12
	maxInitLen  = 32768

	xattrMagic      = 0xEA020000
	xattrIndexSys   = 7 // "system." names
	xattrEntryFixed = 16
)

// volume is an opened filesystem: the superblock numbers the lookup needs,
// already checked for sanity.
type volume struct {
	r    io.ReaderAt
	size int64 // bytes in the image, -1 when the reader cannot tell

	bs             uint64 // block size
	blocks         uint64 // s_blocks_count
	firstDataBlock uint64
	blocksPerGroup uint64
	inodesPerGroup uint64
	inodesCount    uint64
	inodeSize      uint64
	descSize       uint64
	desc64         bool
	groups         uint64
	compat         uint32
	roCompat       uint32
	incompat       uint32
	firstMetaBG    uint64
	backupBGs      [2]uint64
	label          string

	treeBlocks int // extent/indirect blocks read so far for this lookup
}

type inode struct {
	raw   []byte // the whole on-disk inode (inodeSize bytes)
	mode  uint16
	flags uint32
	size  uint64
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("ext4: "+format+": %w", append(args, ErrNotExt4)...)
}

// ReadRootFile reads the regular file called name in the root directory of
// the ext2/3/4 filesystem in r (a raw image or block device read from
// offset 0). It returns at most limit bytes (a larger file is truncated);
// limit <= 0 means 1 MiB. Holes and unwritten extents read as zeros. Names
// compare byte for byte. Errors wrap ErrNotExt4 (not a filesystem this
// reader handles, or a corrupt one), ErrNotFound, or the reader's own
// error.
func ReadRootFile(r io.ReaderAt, name string, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	if name == "" || name == "." || name == ".." || len(name) > 255 || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("ext4: invalid file name %q: %w", name, ErrNotFound)
	}
	v, err := open(r, true)
	if err != nil {
		return nil, err
	}
	root, err := v.inode(rootIno)
	if err != nil {
		return nil, err
	}
	if root.mode&modeTypeMask != modeDir {
		return nil, corrupt("root inode is not a directory (mode %#o)", root.mode)
	}
	ino, err := v.lookup(root, name)
	if err != nil {
		return nil, err
	}
	f, err := v.inode(ino)
	if err != nil {
		return nil, err
	}
	if f.mode&modeTypeMask != modeRegular {
		return nil, fmt.Errorf("ext4: %q is not a regular file (mode %#o): %w", name, f.mode, ErrNotFound)
	}
	return v.readFile(f, uint64(limit))
}

// Label returns the volume label of the ext2/3/4 filesystem in r ("" when
// it has none). Only the superblock is checked: a label is readable even
// when ReadRootFile would refuse the filesystem's features.
func Label(r io.ReaderAt) (string, error) {
	v, err := open(r, false)
	if err != nil {
		return "", err
	}
	return v.label, nil
}

// imageSize is the size of r when it can tell, else -1. A block device's
// Stat reports size 0, so only regular files count.
func imageSize(r io.ReaderAt) int64 {
	switch x := r.(type) {
	case interface{ Size() int64 }:
		if s := x.Size(); s >= 0 {
			return s
		}
	case interface{ Stat() (fs.FileInfo, error) }:
		if fi, err := x.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	}
	return -1
}

func open(r io.ReaderAt, checkFeatures bool) (*volume, error) {
	v := &volume{r: r, size: imageSize(r)}
	sb := make([]byte, superSize)
	if err := v.readAt(sb, superOffset, "superblock"); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if m := le.Uint16(sb[0x38:]); m != superMagic {
		return nil, corrupt("bad superblock magic %#04x", m)
	}
	logBS := le.Uint32(sb[0x18:])
	if logBS > 6 { // 1 KiB << 6 = 64 KiB, the largest block size ext4 knows
		return nil, corrupt("block size 1024<<%d out of range", logBS)
	}
	v.bs = 1024 << logBS
	v.label = string(sb[0x78 : 0x78+16])
	if i := strings.IndexByte(v.label, 0); i >= 0 {
		v.label = v.label[:i]
	}
	if !checkFeatures {
		return v, nil
	}

	v.compat = le.Uint32(sb[0x5C:])
	v.incompat = le.Uint32(sb[0x60:])
	v.roCompat = le.Uint32(sb[0x64:])
	for _, f := range incompatNames {
		if v.incompat&f.bit != 0 {
			return nil, corrupt("unsupported incompatible feature %s", f.name)
		}
	}
	if u := v.incompat &^ incompatHandled; u != 0 {
		return nil, corrupt("unknown incompatible features %#x", u)
	}
	// Read-only compatible features (huge_file, metadata_csum, bigalloc,
	// ...) never change how a reader finds file data, so all are fine.

	v.inodeSize = goodOldInode
	if le.Uint32(sb[0x4C:]) >= 1 { // dynamic revision: inode size is recorded
		v.inodeSize = uint64(le.Uint16(sb[0x58:]))
		if v.inodeSize < goodOldInode || v.inodeSize > v.bs || v.inodeSize&(v.inodeSize-1) != 0 {
			return nil, corrupt("inode size %d invalid", v.inodeSize)
		}
	}
	v.blocks = uint64(le.Uint32(sb[0x04:]))
	v.descSize = 32
	if v.incompat&incompat64Bit != 0 {
		v.blocks |= uint64(le.Uint32(sb[0x150:])) << 32
		if ds := uint64(le.Uint16(sb[0xFE:])); ds >= 64 {
			if ds > 1024 || ds&(ds-1) != 0 {
				return nil, corrupt("group descriptor size %d invalid", ds)
			}
			v.descSize, v.desc64 = ds, true
		}
	}
	// Keeps every byte offset of a block inside an int64.
	if v.blocks == 0 || v.blocks > (1<<63-1)/v.bs {
		return nil, corrupt("block count %d invalid", v.blocks)
	}
	if v.size >= 0 && v.blocks > uint64(v.size)/v.bs {
		return nil, corrupt("filesystem of %d blocks of %d bytes is larger than the image (%d bytes)", v.blocks, v.bs, v.size)
	}
	v.firstDataBlock = uint64(le.Uint32(sb[0x14:]))
	v.blocksPerGroup = uint64(le.Uint32(sb[0x20:]))
	v.inodesPerGroup = uint64(le.Uint32(sb[0x28:]))
	v.inodesCount = uint64(le.Uint32(sb[0x00:]))
	if v.firstDataBlock >= v.blocks || v.blocksPerGroup == 0 {
		return nil, corrupt("first data block %d / blocks per group %d invalid", v.firstDataBlock, v.blocksPerGroup)
	}
	// The inode bitmap of a group is one block.
	if v.inodesPerGroup == 0 || v.inodesPerGroup > 8*v.bs || v.inodesCount < rootIno {
		return nil, corrupt("inodes per group %d / inode count %d invalid", v.inodesPerGroup, v.inodesCount)
	}
	v.groups = (v.blocks - v.firstDataBlock + v.blocksPerGroup - 1) / v.blocksPerGroup
	v.firstMetaBG = uint64(le.Uint32(sb[0x104:]))
	v.backupBGs = [2]uint64{uint64(le.Uint32(sb[0x24C:])), uint64(le.Uint32(sb[0x250:]))}
	return v, nil
}

// readAt fills p from byte offset off. Data ending short of p (outside the
// image) is corruption; any other reader error is passed on as is.
func (v *volume) readAt(p []byte, off uint64, what string) error {
	end := off + uint64(len(p))
	if end < off || end > 1<<63-1 || (v.size >= 0 && end > uint64(v.size)) {
		return corrupt("%s at offset %d beyond the end of the image", what, off)
	}
	n, err := v.r.ReadAt(p, int64(off))
	if n == len(p) {
		return nil // io.ReaderAt may report EOF along with a full read
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("%s at offset %d beyond the end of the image", what, off)
	}
	return fmt.Errorf("ext4: reading %s at offset %d: %w", what, off, err)
}

// hasSuper tells whether group g holds a superblock backup, and with it
// (under meta_bg) its meta group's descriptor block one block later.
func (v *volume) hasSuper(g uint64) bool {
	switch {
	case g == 0:
		return true
	case v.compat&compatSparseSuper2 != 0:
		return g == v.backupBGs[0] || g == v.backupBGs[1]
	case g == 1 || v.roCompat&roCompatSparseSuper == 0:
		return true
	case g%2 == 0:
		return false
	}
	for _, b := range []uint64{3, 5, 7} {
		p := b
		for p < g {
			p *= b
		}
		if p == g {
			return true
		}
	}
	return false
}

// descBlock is the block holding group g's descriptor. Classically all
// descriptors follow the superblock's block; under meta_bg, each meta group
// (one block of descriptors) keeps its own at the start of its first group.
func (v *volume) descBlock(g uint64) uint64 {
	perBlock := v.bs / v.descSize
	mg := g / perBlock
	sbBlock := superOffset / v.bs // 1 with 1 KiB blocks, else 0
	if v.incompat&incompatMetaBG == 0 || mg < v.firstMetaBG || mg == 0 {
		return sbBlock + 1 + mg
	}
	first := mg * perBlock
	b := v.firstDataBlock + first*v.blocksPerGroup
	if v.hasSuper(first) {
		b++
	}
	return b
}

// inodeOffset is the byte offset of inode ino in the image.
func (v *volume) inodeOffset(ino uint64) (uint64, error) {
	if ino == 0 || ino > v.inodesCount {
		return 0, corrupt("inode number %d out of range", ino)
	}
	g, idx := (ino-1)/v.inodesPerGroup, (ino-1)%v.inodesPerGroup
	if g >= v.groups {
		return 0, corrupt("inode %d in group %d of %d", ino, g, v.groups)
	}
	db := v.descBlock(g)
	if db >= v.blocks {
		return 0, corrupt("group %d descriptor block %d out of range", g, db)
	}
	desc := make([]byte, v.descSize)
	if err := v.readAt(desc, db*v.bs+(g%(v.bs/v.descSize))*v.descSize, "group descriptor"); err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	table := uint64(le.Uint32(desc[0x08:]))
	if v.desc64 {
		table |= uint64(le.Uint32(desc[0x28:])) << 32
	}
	off := idx * v.inodeSize
	if table >= v.blocks || table+off/v.bs >= v.blocks {
		return 0, corrupt("inode table of group %d at block %d out of range", g, table)
	}
	return table*v.bs + off, nil
}

func (v *volume) inode(ino uint64) (*inode, error) {
	off, err := v.inodeOffset(ino)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, v.inodeSize)
	if err := v.readAt(raw, off, fmt.Sprintf("inode %d", ino)); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	return &inode{
		raw:   raw,
		mode:  le.Uint16(raw[0x00:]),
		flags: le.Uint32(raw[0x20:]),
		size:  uint64(le.Uint32(raw[0x04:])) | uint64(le.Uint32(raw[0x6C:]))<<32,
	}, nil
}

// lookup scans the root directory's entries linearly. An htree directory
// needs no special case: its index blocks look like one empty entry
// spanning the block, and every leaf block is a linear block.
func (v *volume) lookup(dir *inode, name string) (uint64, error) {
	if dir.flags&flagEncrypt != 0 {
		return 0, corrupt("root directory is encrypted")
	}
	if dir.flags&flagInlineData != 0 {
		// The first 4 bytes of i_block are the parent's inode number, the
		// rest and then the system.data attribute hold entries.
		ino, err := v.findEntry(dir.raw[iBlockOffset+4:iBlockOffset+iBlockSize], name)
		if ino != 0 || err != nil {
			return ino, err
		}
		extra, err := v.inlineXattr(dir)
		if err != nil {
			return 0, err
		}
		if ino, err = v.findEntry(extra, name); ino != 0 || err != nil {
			return ino, err
		}
		return 0, fmt.Errorf("ext4: %q: %w", name, ErrNotFound)
	}
	size := dir.size
	if size > maxDirBytes || (v.size >= 0 && size > uint64(v.size)) {
		return 0, corrupt("root directory size %d too large", size)
	}
	var found uint64
	errFound := errors.New("found")
	buf := make([]byte, v.bs)
	err := v.mapData(dir, (size+v.bs-1)/v.bs, func(_, phys, n uint64) error {
		for i := range n {
			if err := v.readAt(buf, (phys+i)*v.bs, "directory block"); err != nil {
				return err
			}
			ino, err := v.findEntry(buf, name)
			if err != nil {
				return err
			}
			if ino != 0 {
				found = ino
				return errFound
			}
		}
		return nil
	})
	switch {
	case found != 0:
		return found, nil
	case err != nil:
		return 0, err
	}
	return 0, fmt.Errorf("ext4: %q: %w", name, ErrNotFound)
}

// findEntry returns the inode number of name in a block of linear
// directory entries, 0 when absent.
func (v *volume) findEntry(b []byte, name string) (uint64, error) {
	le := binary.LittleEndian
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return 0, corrupt("directory entry at %d truncated", off)
		}
		e := b[off:]
		ino := le.Uint32(e)
		rec := int(le.Uint16(e[4:]))
		if v.bs >= 65536 { // 64 KiB blocks need 17 bits: the low 2 carry bits 16-17
			if rec == 0 || rec == 65535 {
				rec = 65536
			} else {
				rec = rec&0xFFFC | (rec&3)<<16
			}
		}
		nameLen := int(e[6])
		if v.incompat&incompatFiletype == 0 {
			nameLen = int(le.Uint16(e[6:])) // before filetype, name_len was 16 bits
		}
		if rec < 8 || rec%4 != 0 || rec > len(b)-off || 8+nameLen > rec {
			return 0, corrupt("directory entry at %d: rec_len %d name_len %d invalid", off, rec, nameLen)
		}
		if ino != 0 && nameLen == len(name) && string(e[8:8+nameLen]) == name {
			return uint64(ino), nil
		}
		off += rec
	}
	return 0, nil
}

// readFile returns the first min(size, limit) bytes of f.
func (v *volume) readFile(f *inode, limit uint64) ([]byte, error) {
	if f.flags&flagEncrypt != 0 {
		return nil, corrupt("file is encrypted")
	}
	n := min(f.size, limit)
	if f.flags&flagInlineData != 0 {
		// The first 60 bytes live in i_block, the rest in system.data.
		data := f.raw[iBlockOffset : iBlockOffset+iBlockSize]
		if n > iBlockSize {
			extra, err := v.inlineXattr(f)
			if err != nil {
				return nil, err
			}
			data = append(data[:iBlockSize:iBlockSize], extra...)
		}
		if uint64(len(data)) < n {
			return nil, corrupt("inline data of %d bytes, file size %d", len(data), f.size)
		}
		return append([]byte(nil), data[:n]...), nil
	}
	// Allocated before the walk so holes and unwritten extents stay zero;
	// its size is bounded by the caller's limit.
	buf := make([]byte, n)
	err := v.mapData(f, (n+v.bs-1)/v.bs, func(lblk, phys, count uint64) error {
		start := lblk * v.bs
		end := min((lblk+count)*v.bs, n)
		return v.readAt(buf[start:end], phys*v.bs, "file data")
	})
	if err != nil {
		return nil, err
	}
	return buf, nil
}

// inlineXattr returns the value of the system.data attribute in the inode
// body: the part of inline data that does not fit in i_block. nil when
// there is none.
func (v *volume) inlineXattr(f *inode) ([]byte, error) {
	le := binary.LittleEndian
	if v.inodeSize <= goodOldInode+2 {
		return nil, nil
	}
	start := goodOldInode + uint64(le.Uint16(f.raw[goodOldInode:])) // i_extra_isize
	if start%4 != 0 || start+4 > v.inodeSize || le.Uint32(f.raw[start:]) != xattrMagic {
		return nil, nil
	}
	area := f.raw[start+4:] // value offsets count from the first entry
	for off := 0; off+xattrEntryFixed <= len(area); {
		e := area[off:]
		if le.Uint32(e) == 0 { // end of the entry list
			break
		}
		nameLen := int(e[0])
		if off+xattrEntryFixed+nameLen > len(area) {
			return nil, corrupt("inode extended attribute entry at %d truncated", off)
		}
		if e[1] == xattrIndexSys && string(e[xattrEntryFixed:xattrEntryFixed+nameLen]) == "data" {
			vOff, vIno, vSize := int(le.Uint16(e[2:])), le.Uint32(e[4:]), int(le.Uint32(e[8:]))
			if vIno != 0 || vSize > len(area) || vOff > len(area)-vSize {
				return nil, corrupt("inline data attribute (offset %d, size %d, inode %d) invalid", vOff, vSize, vIno)
			}
			return area[vOff : vOff+vSize], nil
		}
		off += (xattrEntryFixed + nameLen + 3) &^ 3
	}
	return nil, nil
}

// runFunc receives logical blocks [lblk, lblk+n) stored from physical block
// phys on. Holes and unwritten extents are never passed: they read as
// zeros. A non-nil return stops the walk and is returned.
type runFunc func(lblk, phys, n uint64) error

// mapData passes fn the data runs of f within logical blocks [0, nblocks),
// in logical order. Callers handle inline data (no blocks) themselves. Runs never overlap, so the data read is bounded by
// nblocks blocks.
func (v *volume) mapData(f *inode, nblocks uint64, fn runFunc) error {
	v.treeBlocks = 0
	if nblocks == 0 {
		return nil
	}
	iblock := f.raw[iBlockOffset : iBlockOffset+iBlockSize]
	if f.flags&flagExtents != 0 {
		return v.walkExtents(iblock, -1, 0, nblocks, fn)
	}
	return v.walkBlockMap(iblock, nblocks, fn)
}

// treeBlock reads an extent index or indirect block, counting it against
// the per-file budget.
func (v *volume) treeBlock(blk uint64, what string) ([]byte, error) {
	if blk == 0 || blk >= v.blocks {
		return nil, corrupt("%s block %d out of range", what, blk)
	}
	if v.treeBlocks++; v.treeBlocks > maxTreeBlocks {
		return nil, corrupt("more than %d %s blocks", maxTreeBlocks, what)
	}
	b := make([]byte, v.bs)
	if err := v.readAt(b, blk*v.bs, what); err != nil {
		return nil, err
	}
	return b, nil
}

// walkExtents walks the extent tree node in node, passing runs that fall in
// logical blocks [lo, hi). wantDepth is the depth the parent promised (-1
// at the root). Index entries must be strictly increasing and leaf extents
// must not overlap; each child only contributes within its index range, so
// runs are disjoint across the whole tree even if a corrupt tree points at
// one block twice.
func (v *volume) walkExtents(node []byte, wantDepth int, lo, hi uint64, fn runFunc) error {
	le := binary.LittleEndian
	if len(node) < extentEntry || le.Uint16(node) != extentMagic {
		return corrupt("bad extent header")
	}
	entries, depth := int(le.Uint16(node[2:])), int(le.Uint16(node[6:]))
	if depth > maxExtentDepth || (wantDepth >= 0 && depth != wantDepth) {
		return corrupt("extent tree depth %d invalid", depth)
	}
	if extentEntry*(1+entries) > len(node) {
		return corrupt("extent node with %d entries overflows its %d bytes", entries, len(node))
	}
	var prevEnd uint64
	for i := range entries {
		e := node[extentEntry*(1+i):]
		start := uint64(le.Uint32(e))
		if depth == 0 {
			n := uint64(le.Uint16(e[4:]))
			phys := uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
			unwritten := n > maxInitLen
			if unwritten {
				n -= maxInitLen
			}
			if n == 0 || (i > 0 && start < prevEnd) || phys >= v.blocks || n > v.blocks-phys {
				return corrupt("extent %d (logical %d, length %d, physical %d) invalid", i, start, n, phys)
			}
			prevEnd = start + n
			s, end := max(start, lo), min(start+n, hi)
			if unwritten || s >= end {
				continue
			}
			if err := fn(s, phys+(s-start), end-s); err != nil {
				return err
			}
			continue
		}
		if i > 0 && start < prevEnd {
			return corrupt("extent index %d (logical %d) out of order", i, start)
		}
		prevEnd = start + 1
		if start >= hi {
			break
		}
		end := hi
		if i+1 < entries {
			end = min(end, uint64(le.Uint32(node[extentEntry*(2+i):])))
		}
		s := max(start, lo)
		if s >= end {
			continue
		}
		child := uint64(le.Uint16(e[8:]))<<32 | uint64(le.Uint32(e[4:]))
		b, err := v.treeBlock(child, "extent index")
		if err != nil {
			return err
		}
		if err := v.walkExtents(b, depth-1, s, end, fn); err != nil {
			return err
		}
	}
	return nil
}

// walkBlockMap walks a classic ext2/3 block map: 12 direct blocks, then
// single, double and triple indirect blocks. Zero pointers are holes.
func (v *volume) walkBlockMap(iblock []byte, nblocks uint64, fn runFunc) error {
	le := binary.LittleEndian
	for i := uint64(0); i < 12 && i < nblocks; i++ {
		if err := v.blockRun(i, uint64(le.Uint32(iblock[4*i:])), fn); err != nil {
			return err
		}
	}
	perBlock := v.bs / 4
	base, span := uint64(12), uint64(1)
	for level := 1; level <= 3 && base < nblocks; level++ {
		span *= perBlock // logical blocks under one pointer at this level
		if p := uint64(le.Uint32(iblock[4*(11+level):])); p != 0 {
			if err := v.walkIndirect(p, level, base, nblocks, fn); err != nil {
				return err
			}
		}
		base += span
	}
	return nil
}

func (v *volume) blockRun(lblk, phys uint64, fn runFunc) error {
	if phys == 0 {
		return nil
	}
	if phys >= v.blocks {
		return corrupt("data block %d out of range", phys)
	}
	return fn(lblk, phys, 1)
}

// walkIndirect walks an indirect block at the given level (1 = pointers to
// data) whose first pointer maps logical block base.
func (v *volume) walkIndirect(blk uint64, level int, base, nblocks uint64, fn runFunc) error {
	b, err := v.treeBlock(blk, "indirect")
	if err != nil {
		return err
	}
	perBlock := v.bs / 4
	span := uint64(1)
	for range level - 1 {
		span *= perBlock
	}
	le := binary.LittleEndian
	for i := uint64(0); i < perBlock; i++ {
		lblk := base + i*span
		if lblk >= nblocks {
			break
		}
		p := uint64(le.Uint32(b[4*i:]))
		if level == 1 {
			err = v.blockRun(lblk, p, fn)
		} else if p != 0 {
			err = v.walkIndirect(p, level-1, lblk, nblocks, fn)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
