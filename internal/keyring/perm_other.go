//go:build !unix

package keyring

import "io/fs"

// On Windows the mode bits say nothing about who may write (ACLs do), and
// the user's profile directory is private by default: no check.
func checkDir(string, fs.FileInfo) error  { return nil }
func checkFile(string, fs.FileInfo) error { return nil }
