#!/bin/sh
# Rebuilds golden.ext4.gz, the small image the unit tests and the fuzz
# seed corpus use without e2fsprogs (run from this directory):
#   MARKER  "disk1\n"                      block-mapped (made before extents)
#   old     14000 patterned bytes          block-mapped, with an indirect block
#   sub/x   a directory in the root
#   new     5000 patterned bytes           extent-mapped
#   sparse  10 KiB: data, hole, unwritten extent (over junk), data, hole
# The filesystem starts without extents and 64bit, then gains both (as an
# upgraded ext3 would), so one image covers block maps, extents, 64-byte
# group descriptors and metadata_csum.
set -eu
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/d/sub"
printf 'disk1\n' >"$W/d/MARKER"
python3 -c 'import sys; sys.stdout.buffer.write(bytes((i*7+i//251)%256 for i in range(14000)))' >"$W/d/old"
printf 'in sub\n' >"$W/d/sub/x"
python3 -c 'import sys; sys.stdout.buffer.write(bytes((i*13+5)%256 for i in range(5000)))' >"$W/new"
python3 -c 'import sys; sys.stdout.buffer.write(b"A"*1024)' >"$W/sparse"
python3 -c 'import sys; sys.stdout.buffer.write(b"B"*1024)' | dd of="$W/sparse" bs=1024 seek=5 conv=notrunc status=none
truncate -s 10K "$W/sparse"
# Freed before the fallocate, so the unwritten extent lands on blocks
# holding junk: reading them as data would show.
python3 -c 'import sys; sys.stdout.buffer.write(b"J"*4096)' >"$W/junk"
img=$W/golden.ext4
mkfs.ext4 -q -F -b 1024 -N 32 -O ^has_journal,^extent,^64bit -E root_owner=0:0 -L xdisk1 -d "$W/d" "$img" 80K >/dev/null
tune2fs -O extent "$img" >/dev/null 2>&1
resize2fs -b "$img" >/dev/null 2>&1
debugfs -w -f - "$img" >/dev/null 2>&1 <<CMDS
write $W/new new
write $W/junk junk
rm junk
write $W/sparse sparse
fallocate sparse 2 3
CMDS
e2fsck -fn "$img" >/dev/null 2>&1 || { echo "make-golden.sh: e2fsck found errors" >&2; exit 1; }
gzip -9n <"$img" >golden.ext4.gz
