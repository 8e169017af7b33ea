// Package gitcred is git-credential-entra: git's credential-helper protocol
// answered with Entra tokens for Azure Repos.
//
// Only `version` is implemented so far. get, store and erase follow the
// protocol's "no answer" (no output, exit 0) so git moves on to its next
// helper, and say on stderr that the helper is not built yet.
package gitcred

import (
	"context"
	"fmt"
	"io"

	"github.com/entra-helpers/entra/internal/version"
	"github.com/urfave/cli/v2"
)

// Name is the binary's name, as git finds it from `credential.helper = entra`.
const Name = "git-credential-entra"

// Run is the whole program over injected streams; it returns the exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	notYet := func(c *cli.Context) error {
		// git ignores helpers that print nothing: it goes on to the next one.
		fmt.Fprintf(stderr, "%s: %s is not implemented yet; git will use its other credential helpers\n", Name, c.Command.Name)
		return nil
	}
	app := &cli.App{
		Name:           Name,
		Usage:          "git credential helper for Azure Repos with Microsoft Entra ID tokens",
		Reader:         stdin,
		Writer:         stderr, // stdout is the protocol's alone
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{Name: "get", Usage: "answer a credential request from git", Action: notYet},
			{Name: "store", Usage: "accepted and ignored (tokens are never stored by git)", Action: func(*cli.Context) error { return nil }},
			{Name: "erase", Usage: "forget the cached token after git saw it rejected", Action: notYet},
			{Name: "version", Usage: "print the version", Action: func(*cli.Context) error {
				fmt.Fprintf(stdout, "%s %s\n", Name, version.Version)
				return nil
			}},
		},
		// git may call actions it adds in the future: ignore them, as git asks.
		CommandNotFound: func(*cli.Context, string) {},
	}
	if err := app.RunContext(ctx, append([]string{Name}, args...)); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", Name, err)
		return 1
	}
	return 0
}
