//go:build unix

package objectstore

import "syscall"

// diskSpace is the space available to unprivileged writes, and the size,
// of the filesystem holding path.
func diskSpace(path string) (free, size uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), uint64(st.Blocks) * uint64(st.Bsize), nil
}
