// Package version holds the build's version, set at link time with
// -ldflags "-X github.com/entra-helpers/entra/internal/version.Version=v1.2.3".
package version

// Version is "dev" for builds from a work tree.
var Version = "dev"
