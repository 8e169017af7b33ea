// Command entratest runs the local Entra authority of package entratest on
// its own, for trying the helpers by hand. It prints the shell variables
// that point the helpers at it, then serves until interrupted.
//
//	eval "$(go run ./internal/cmd/entratest --ca-file /tmp/entratest-ca.pem &)"
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/entra-helpers/entra/internal/entratest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address of the HTTPS authority")
	miAddr := flag.String("mi-addr", "127.0.0.1:0", "address of the plain-HTTP managed-identity endpoints")
	caFile := flag.String("ca-file", filepath.Join(os.TempDir(), "entratest-ca.pem"), "where to write the CA certificate (for SSL_CERT_FILE)")
	lifetime := flag.Duration("token-lifetime", time.Hour, "lifetime of issued access tokens")
	approve := flag.String("approve-device-codes-as", "", "sign this user in to every device code at once (default: approve at the /devicelogin page)")
	verbose := flag.Bool("v", false, "log every request to stderr")
	flag.Parse()

	cfg := entratest.Config{Addr: *addr, MIAddr: *miAddr, TokenLifetime: *lifetime}
	if *verbose {
		cfg.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	}
	s, err := entratest.Start(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "entratest: %v\n", err)
		os.Exit(1)
	}
	defer s.Close()
	if err := s.WriteCAFile(*caFile); err != nil {
		fmt.Fprintf(os.Stderr, "entratest: writing the CA file: %v\n", err)
		os.Exit(1)
	}
	s.SetBrowserUser(entratest.DefaultUsername)
	s.SetDeviceCodeAutoApprove(*approve)

	// stdout: shell lines only, so `eval` works. These are fake credentials of
	// this local authority, not secrets of any real tenant.
	fmt.Printf("export SSL_CERT_FILE=%s\n", *caFile)
	fmt.Printf("export AZURE_AUTHORITY_HOST=%s\n", s.URL)
	fmt.Printf("export AZURE_TENANT_ID=%s\n", entratest.DefaultTenantID)
	fmt.Printf("export AZURE_CLIENT_ID=%s\n", entratest.DefaultClientID)
	fmt.Printf("export AZURE_CLIENT_SECRET=%s\n", entratest.DefaultClientSecret)
	fmt.Printf("# managed identity (App Service shape): export IDENTITY_ENDPOINT=%s IDENTITY_HEADER=%s\n",
		s.ManagedIdentityEnv()["IDENTITY_ENDPOINT"], s.IdentityHeader())
	fmt.Printf("# user: %s / %s; device codes: %s/devicelogin\n", entratest.DefaultUsername, entratest.DefaultUserPassword, s.URL)
	os.Stdout.Sync()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "entratest: serving %s (managed identity at %s); Ctrl-C to stop\n", s.URL, s.MIURL)
	<-ctx.Done()
}
