// Command kubelogin-lite: see package kubelogin.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/entra-helpers/entra/internal/kubelogin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := kubelogin.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
