package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// VIFs: a tap device on the network's Linux bridge when that bridge exists
// and xenithd may make taps (root); otherwise QEMU's user-mode networking
// with restrict=on (the guest reaches nothing outside).

// bridgeUsable tells whether br is a Linux bridge we can put taps on.
func bridgeUsable(br string) bool {
	if br == "" || strings.Contains(br, "/") || br == "." || br == ".." {
		return false
	}
	if _, err := os.Stat("/sys/class/net/" + br + "/bridge"); err != nil {
		return false
	}
	return unix.Access("/dev/net/tun", unix.R_OK|unix.W_OK) == nil && os.Geteuid() == 0
}

// tapName is the tap of a VIF, as Xen names its vifs: vif<domid>.<device>.
func tapName(domid int, dev string) string { return "vif" + strconv.Itoa(domid) + "." + dev }

// openTap makes a (non-persistent) tap, enslaves it to bridge and brings
// it up. The tap disappears when the last holder of the file (QEMU) exits.
func openTap(name, bridge string, mtu int) (*os.File, error) {
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tap name %q too long", name)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var req [unix.IFNAMSIZ + 64]byte
	copy(req[:], name)
	*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, errno)
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
	args := []string{"link", "set", "dev", name, "master", bridge, "up"}
	if mtu > 0 {
		args = append(args, "mtu", strconv.Itoa(mtu))
	}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		f.Close()
		return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return f, nil
}

// tapCounters reads a tap's byte counters. The tap's rx is what the guest
// sent.
func tapCounters(name string) (fromGuest, toGuest int64, ok bool) {
	read := func(f string) (int64, error) {
		b, err := os.ReadFile("/sys/class/net/" + name + "/statistics/" + f)
		if err != nil {
			return 0, err
		}
		return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	rx, err1 := read("rx_bytes")
	tx, err2 := read("tx_bytes")
	return rx, tx, err1 == nil && err2 == nil
}
