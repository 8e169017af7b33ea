//go:build unix

package keyring

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkDir refuses a directory that another user could change: one writable
// by group or others, or owned by someone else, could have its files swapped.
func checkDir(path string, fi fs.FileInfo) error {
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: cache directory %s is writable by group or others (%v): run `chmod go-w %s` or set ENTRA_CACHE_DIR",
			ErrInsecurePath, path, fi.Mode().Perm(), path)
	}
	return checkOwner("cache directory", path, fi)
}

// checkFile refuses a cache file owned by another user.
func checkFile(path string, fi fs.FileInfo) error {
	return checkOwner("cache file", path, fi)
}

func checkOwner(what, path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("%w: %s %s is owned by uid %d, not by you (uid %d): remove it or set ENTRA_CACHE_DIR",
			ErrInsecurePath, what, path, st.Uid, uid)
	}
	return nil
}
