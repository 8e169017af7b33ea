// Command git-credential-entra: see package gitcred.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/entra-helpers/entra/internal/gitcred"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := gitcred.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
