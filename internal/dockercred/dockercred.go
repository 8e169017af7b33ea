// Package dockercred is docker-credential-entra: the docker credential-helper
// protocol answered with Azure Container Registry tokens from Entra.
//
// Only `version` is implemented so far. get answers the protocol's "not
// found", so docker and crane go on anonymously, and says on stderr that the
// helper is not built yet.
package dockercred

import (
	"context"
	"fmt"
	"io"

	"github.com/entra-helpers/entra/internal/version"
)

// Name is the binary's name, as docker finds it from credHelpers "entra".
const Name = "docker-credential-entra"

// errNotFound is the exact text docker clients read as "no credentials".
const errNotFound = "credentials not found in native keychain"

// Run is the whole program over injected streams; it returns the exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "usage: %s get|store|erase|list|version\n", Name)
		return 1
	}
	switch args[0] {
	case "version":
		fmt.Fprintf(stdout, "%s %s\n", Name, version.Version)
		return 0
	case "get", "store", "erase", "list":
		fmt.Fprintf(stderr, "%s: %s is not implemented yet\n", Name, args[0])
		// docker-credential-helpers puts protocol errors on stdout.
		fmt.Fprintln(stdout, errNotFound)
		return 1
	default:
		fmt.Fprintf(stderr, "%s: unknown action %q: use get, store, erase, list or version\n", Name, args[0])
		return 1
	}
}
