//go:build !linux

package exehash

import (
	"errors"
	"os"
)

// errNotLinux is what hashing gives elsewhere: the hashes are of the
// binaries the sensor saw run, and the sensor needs Linux.
var errNotLinux = errors.New("hashing executables needs Linux")

func openRegular(path string, dev, ino uint64) (*os.File, Key, error) {
	return nil, Key{}, errNotLinux
}

func fstat(f *os.File) (Key, error) { return Key{}, errNotLinux }

func statKey(path string) (Key, bool) { return Key{}, false }
