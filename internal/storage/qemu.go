package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// ErrNoQemuImg says qcow2 work was asked for but qemu-img (Debian package
// qemu-utils) is not installed.
var ErrNoQemuImg = errors.New("qcow2 images need qemu-img (Debian package qemu-utils), which is not installed")

// qemuImgPath finds qemu-img; tests may replace it.
var qemuImgPath = func() (string, error) { return exec.LookPath("qemu-img") }

// QemuImgAvailable reports whether qemu-img is on PATH.
func QemuImgAvailable() bool {
	_, err := qemuImgPath()
	return err == nil
}

// QemuImg runs qemu-img with args; a failure carries qemu-img's message.
func QemuImg(ctx context.Context, args ...string) error {
	path, err := qemuImgPath()
	if err != nil {
		return ErrNoQemuImg
	}
	cmd := exec.CommandContext(ctx, path, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("qemu-img %s: %s", args[0], msg)
	}
	return nil
}

// qcow2Magic opens every qcow2 image: "QFI\xfb".
const qcow2Magic = 0x514649fb

// Qcow2Header is the part of a qcow2 header xenithd reads.
type Qcow2Header struct {
	Version     uint32
	VirtualSize int64
	BackingFile string
}

// ReadQcow2Header reads the header of the qcow2 image at path (no qemu-img
// needed).
func ReadQcow2Header(path string) (Qcow2Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Qcow2Header{}, err
	}
	defer f.Close()
	var raw [32]byte
	if _, err := io.ReadFull(f, raw[:]); err != nil {
		return Qcow2Header{}, fmt.Errorf("%s: not a qcow2 image: %w", path, err)
	}
	if binary.BigEndian.Uint32(raw[0:4]) != qcow2Magic {
		return Qcow2Header{}, fmt.Errorf("%s: not a qcow2 image", path)
	}
	h := Qcow2Header{
		Version:     binary.BigEndian.Uint32(raw[4:8]),
		VirtualSize: int64(binary.BigEndian.Uint64(raw[24:32])),
	}
	off := binary.BigEndian.Uint64(raw[8:16])
	n := binary.BigEndian.Uint32(raw[16:20])
	if off != 0 && n > 0 && n <= 1023 {
		name := make([]byte, n)
		if _, err := f.ReadAt(name, int64(off)); err == nil {
			h.BackingFile = string(name)
		}
	}
	return h, nil
}
