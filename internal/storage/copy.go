package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"syscall"
)

// copyChunk is the unit of sparse copies: a chunk of zeros is not written.
const copyChunk = 1 << 20

// Linux lseek whences that find data and holes in sparse files.
const (
	seekData = 3
	seekHole = 4
)

// fallocate flags that turn a range of a file into a hole.
const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
)

// CopySparse copies the first size bytes of src into dst without
// allocating space for zeros: holes of src are skipped (found with
// SEEK_DATA/SEEK_HOLE where the filesystem offers them) and so are chunks
// that read as zeros. When fresh is true dst is known to read as zeros
// (a new file), so nothing is written for zeros; otherwise the matching
// ranges of dst are zeroed (by punching holes where possible), as a copy
// into an existing disk must. dst ends at least size bytes long.
func CopySparse(ctx context.Context, dst, src *os.File, size int64, fresh bool) error {
	buf := make([]byte, copyChunk)
	zeroRange := func(off, n int64) error {
		if fresh || n <= 0 {
			return nil
		}
		return zeroFileRange(dst, off, n)
	}
	off := int64(0)
	for off < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		start, end := off, size
		if data, err := src.Seek(off, seekData); err == nil {
			if data >= size {
				return finish(dst, size, zeroRange(off, size-off))
			}
			if err := zeroRange(off, data-off); err != nil {
				return err
			}
			start = data
			if hole, err := src.Seek(data, seekHole); err == nil && hole < size {
				end = hole
			}
		} else if errors.Is(err, syscall.ENXIO) {
			// No data after off: the rest is a hole.
			return finish(dst, size, zeroRange(off, size-off))
		}
		// Otherwise SEEK_DATA is not supported: treat the rest as data.
		for pos := start; pos < end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := int64(len(buf))
			if end-pos < n {
				n = end - pos
			}
			got, err := src.ReadAt(buf[:n], pos)
			if int64(got) < n {
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				// src is shorter than size: what follows reads as zeros.
				if got > 0 && !isZero(buf[:got]) {
					if _, err := dst.WriteAt(buf[:got], pos); err != nil {
						return err
					}
				} else if err := zeroRange(pos, int64(got)); err != nil {
					return err
				}
				end := pos + int64(got)
				return finish(dst, size, zeroRange(end, size-end))
			}
			chunk := buf[:n]
			if isZero(chunk) {
				if err := zeroRange(pos, n); err != nil {
					return err
				}
			} else if _, err := dst.WriteAt(chunk, pos); err != nil {
				return err
			}
			pos += n
		}
		off = end
	}
	return finish(dst, size, nil)
}

// finish makes dst at least size bytes long (trailing holes of src leave
// nothing written).
func finish(dst *os.File, size int64, err error) error {
	if err != nil {
		return err
	}
	fi, err := dst.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < size {
		return dst.Truncate(size)
	}
	return nil
}

// zeroChunk is compared against to find chunks of zeros.
var zeroChunk = make([]byte, copyChunk)

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroChunk))
		if !bytes.Equal(b[:n], zeroChunk[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// zeroFileRange makes a range of f read as zeros, punching a hole when the
// filesystem can and writing zeros otherwise. Past the end of f nothing
// needs doing.
func zeroFileRange(f *os.File, off, n int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if off >= fi.Size() {
		return nil
	}
	if off+n > fi.Size() {
		n = fi.Size() - off
	}
	if err := syscall.Fallocate(int(f.Fd()), fallocPunchHole|fallocKeepSize, off, n); err == nil {
		return nil
	}
	zeros := make([]byte, min(n, copyChunk))
	for n > 0 {
		w := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:w], off); err != nil {
			return err
		}
		off += w
		n -= w
	}
	return nil
}

// CopyFile copies the file at src to a new file dst (mode 0644) sparsely.
// The copy is written under a temporary name and renamed into place, so
// dst never exists half-written.
func CopyFile(ctx context.Context, dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	tmp := tempName(dst)
	out, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	err = CopySparse(ctx, out, in, fi.Size(), true)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// tempName is the name a file is written under before it is complete: a
// hidden name scans ignore.
func tempName(path string) string {
	dir, base := splitPath(path)
	return dir + "." + base + ".part"
}

func splitPath(path string) (dir, base string) {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[:i+1], path[i+1:]
		}
	}
	return "", path
}

// CopyImage copies the data of the disk image src into the existing disk
// image dst (VDI.copy): byte for byte with CopySparse when both are raw,
// through `qemu-img convert` otherwise. fresh says dst was just created and
// reads as zeros. dst must be at least as large as src.
func CopyImage(ctx context.Context, dst, src Image, fresh bool) error {
	if src.Format == FormatRaw && dst.Format == FormatRaw {
		in, err := os.Open(src.Path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst.Path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = CopySparse(ctx, out, in, src.VirtualSize, fresh)
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	}
	args := []string{"convert", "-n"}
	if fresh {
		args = append(args, "--target-is-zero")
	}
	args = append(args, "-f", src.Format, "-O", dst.Format, src.Path, dst.Path)
	return QemuImg(ctx, args...)
}
