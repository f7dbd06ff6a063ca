//go:build !unix

package objectstore

import "errors"

// diskSpace is not measured on this system.
func diskSpace(string) (free, size uint64, err error) {
	return 0, 0, errors.New("objectstore: disk space is measured on Unix only")
}
