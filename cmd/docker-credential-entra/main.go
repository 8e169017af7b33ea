// Command docker-credential-entra: see package dockercred.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/entra-helpers/entra/internal/dockercred"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := dockercred.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
