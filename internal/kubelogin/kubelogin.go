// Package kubelogin is kubelogin-lite: kubectl's exec credential plugin for
// AKS, answering ExecCredential with Entra tokens.
//
// Only `version` is implemented so far: get-token fails with a message that
// says so, and kubectl shows it.
package kubelogin

import (
	"context"
	"fmt"
	"io"

	"github.com/entra-helpers/entra/internal/version"
	"github.com/urfave/cli/v2"
)

// Name is the binary's name, as a kubeconfig's exec command names it.
const Name = "kubelogin-lite"

// Run is the whole program over injected streams; it returns the exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := &cli.App{
		Name:           Name,
		Usage:          "kubectl exec credential plugin for AKS with Microsoft Entra ID",
		Reader:         stdin,
		Writer:         stderr, // stdout is the ExecCredential's alone
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{Name: "get-token", Usage: "print an ExecCredential for kubectl", SkipFlagParsing: true, Action: func(*cli.Context) error {
				return fmt.Errorf("get-token is not implemented yet")
			}},
			{Name: "version", Usage: "print the version", Action: func(*cli.Context) error {
				fmt.Fprintf(stdout, "%s %s\n", Name, version.Version)
				return nil
			}},
		},
	}
	if err := app.RunContext(ctx, append([]string{Name}, args...)); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", Name, err)
		return 1
	}
	return 0
}
